"""`purge --dry-run` lists what a purge will do in the order it will do it (issue 14, item 10).

A pass runs batch by batch (per camera: expired idle footage, expired activity, footage to
thin; then hot footage to move), each batch deletes first, then moves, then thins. A preview
sorted some other way (by camera and time) tells an operator a different story from the audit
log the real purge leaves. Here the real purge's audit records must name the segments in the
very order the dry run listed them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import DAY_MS, seed

HOUR_MS = 3_600_000


def test_dry_run_lists_actions_in_the_order_the_purge_carries_them_out(tmp_path: Path) -> None:
    volumes = [
        {
            "name": name,
            "path": str(tmp_path / name),
            "role": name,
            "reserve_free_bytes": 0,
            "reserve_free_percent": 0,
        }
        for name in ("hot", "archive")
    ]
    cameras = [{"name": c, "url": "demo://", "enabled": False} for c in ("a", "b")]
    config = write_config(tmp_path, cameras, volumes=volumes)
    config.write_text(config.read_text() + "\n[retention]\nthin_after_days = 3\n")
    now = int(time.time() * 1000)
    footage = []
    for camera in ("a", "b"):
        for age_days, activity in ((20, False), (10, True), (5, False)):
            footage += [
                {
                    "camera": camera,
                    "start_ms": now - age_days * DAY_MS + i * HOUR_MS,
                    "activity": activity,
                    "volume": "hot",
                }
                for i in range(3)
            ]
    seed(config, footage, tmp_path / "cache")

    plan = cli_json(config, "purge", "--dry-run")["actions"]
    assert {a["action"] for a in plan} == {"delete", "migrate", "thin"}, plan
    purged = run_cli(config, "purge", "--json")
    assert purged.returncode == 0, purged.stderr
    done = json.loads(purged.stdout)
    assert (done["deleted"], done["migrated"], done["thinned"]) == (6, 6, 6), done

    # What the purge did, in the audit log's order: one record per chunk it carried out.
    records = [
        (r["action"], {s["id"] for s in r["details"]["segments"]})
        for r in cli_json(config, "audit", "list")
        if r["action"] in ("purge", "migrate", "thin")
    ]
    kinds = {"delete": "purge", "migrate": "migrate", "thin": "thin"}
    position = 0
    for action in plan:
        while position < len(records) and action["segment_id"] not in records[position][1]:
            position += 1
        assert position < len(records), (
            f"segment {action['segment_id']} ({action['action']}) is listed after what the "
            f"purge did later: dry run {[a['segment_id'] for a in plan]}, audit {records}"
        )
        assert records[position][0] == kinds[action["action"]], (action, records[position])
