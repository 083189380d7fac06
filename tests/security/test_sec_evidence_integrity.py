"""Issue 14, item 9: corrupt footage is shown as such, and can be checked now.

The background scrub finds a file that no longer matches its SHA-256 at its own slow pace;
whoever looks at footage must see the verdict (`segments`, the API, the web page), and whoever
doubts a range must be able to re-hash it now and get a failing exit code.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ccvault.catalog.audit import AuditLog, audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.host.clock import SystemClock
from ccvault.storage.integrity import Scrubber
from ccvault.storage.volumes import open_volumes
from ccvault.timefmt import utc_text
from tests.api_peer import serve
from tests.conftest import cli_json, run_cli, write_config
from tests.retention_seed import Seeded, seed


def site(root: Path) -> tuple[Path, list[Seeded]]:
    config = write_config(
        root,
        [{"name": n, "url": "demo://", "enabled": False} for n in ("door", "gate")],
    )
    base = int(time.time() * 1000) - 3_600_000
    footage = [{"camera": "door", "start_ms": base + i * 2000} for i in range(3)]
    footage += [{"camera": "gate", "start_ms": base + i * 2000} for i in range(2)]
    return config, seed(config, footage, root / "cache")


def flip(path: Path) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) * 3 // 4] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def segments(config: Path, camera: str) -> list[dict[str, Any]]:
    return cli_json(config, "segments", "--camera", camera, "--from", "-2h", "--to", "now")


def test_verify_rehashes_now_and_exits_1_on_a_corrupt_or_missing_file(tmp_path) -> None:
    config, seeded = site(tmp_path)
    clean = run_cli(config, "verify", "--json")
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["checked"] == 5 and report["ok"] == 5 and report["corrupt"] == []
    door = [s for s in seeded if s.camera == "door"]
    flip(door[1].path)
    bad = run_cli(config, "verify", "--camera", "door")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"segment {door[1].id}" in bad.stdout and "corrupt" in bad.stdout
    assert run_cli(config, "verify", "--camera", "gate").returncode == 0, "not in the selection"
    first = ["--from", utc_text(door[0].start_ms), "--to", utc_text(door[0].end_ms)]
    only_first = json.loads(run_cli(config, "verify", "--camera", "door", *first, "--json").stdout)
    assert only_first["checked"] == 1 and only_first["ok"] == 1
    gate = [s for s in seeded if s.camera == "gate"]
    gate[0].path.unlink()
    everything = run_cli(config, "verify", "--json")
    assert everything.returncode == 1
    found = json.loads(everything.stdout)
    assert [c["id"] for c in found["corrupt"]] == [door[1].id]
    assert [m["id"] for m in found["missing"]] == [gate[0].id]
    assert found["checked"] == 5 and found["ok"] == 3
    # A pipe or a directory in a segment's place is reported, never read (a pipe would block
    # the reader for ever).
    gate[1].path.unlink()
    os.mkfifo(gate[1].path)
    door[2].path.unlink()
    door[2].path.mkdir()
    odd = run_cli(config, "verify", "--json", timeout=60)
    assert odd.returncode == 1
    assert sorted(u["id"] for u in json.loads(odd.stdout)["unreadable"]) == [door[2].id, gate[1].id]
    half = run_cli(config, "verify", "--from", "-1h")
    assert half.returncode == 2 and "--to" in half.stderr
    records = [
        r for r in AuditLog(tmp_path / "audit.jsonl").records() if r["action"] == "segments.verify"
    ]
    assert len(records) == 6 and records[-1]["details"]["corrupt"] == [door[1].id]


def test_a_corrupt_segment_shows_corrupt_in_segments_and_the_api(tmp_path) -> None:
    config, seeded = site(tmp_path)
    target = seeded[1]
    original = flip(target.path)
    scrub_everything(config)  # the daemon's background scrub, all at once
    listed = {s["id"]: s for s in segments(config, "door")}
    assert listed[target.id]["integrity"] == "corrupt" and listed[target.id]["state"] == "ok"
    assert {listed[s.id]["integrity"] for s in seeded if s.camera == "door"} == {"ok", "corrupt"}
    table = run_cli(config, "segments", "--camera", "door", "--from", "-2h", "--to", "now")
    row = next(r for r in table.stdout.splitlines() if r.split()[0] == str(target.id))
    assert " corrupt " in row, table.stdout
    with serve(config) as api, api.client("viewer") as viewer:
        found = viewer.get("/api/segments", params={"camera": "door", "from": "-2h", "to": "now"})
        by_id = {s["id"]: s for s in found.json()}
        assert by_id[target.id]["integrity"] == "corrupt"
        # Put right (restored from a backup), a check now clears it at once.
        target.path.write_bytes(original)
        assert run_cli(config, "verify", "--camera", "door").returncode == 0
        again = viewer.get("/api/segments", params={"camera": "door", "from": "-2h", "to": "now"})
        assert {s["integrity"] for s in again.json()} == {"ok"}


def scrub_everything(config: Path) -> None:
    loaded = load(config).config
    writer = CatalogWriter(loaded.catalog_target, audit_log(loaded))
    try:
        clock = SystemClock()
        volumes = open_volumes(loaded, writer, clock.wall_ms())
        scrubber = Scrubber(writer, lambda: volumes, clock, mb_per_s=1000)
        with writer.reader() as conn:
            count = conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        for _ in range(count):
            assert scrubber.scrub_next()
    finally:
        writer.close()
