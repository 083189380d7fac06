"""A premature deletion made by `ccvault purge` is on record like the daemon's own (issue 14,
item 9): `ccvault alerts` and `GET /api/alerts` list it, and a daemon running beside sends it to
the channels exactly once (the CLI process reaches none).

Pressure in the CLI: a volume allowed one byte of footage (its `max_bytes`) is always over it,
so `purge` deletes footage two days old — inside min_days (7), outside the pressure floor
(24 h).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.api_peer import serve
from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.retention_seed import DAY_MS, seed
from tests.test_alert_channels import WebhookPeer

CAMERA = {"name": "door", "url": "demo://?width=320&height=180"}


def volume(tmp_path: Path, full: bool) -> dict:
    hot = {"name": "hot", "path": str(tmp_path / "hot"), "role": "hot"}
    return {**hot, "max_bytes": 1} if full else hot


def premature_listed(config: Path) -> list[dict]:
    listed = cli_json(config, "alerts")
    return [a for a in listed["active"] + listed["recent"] if a["name"] == "premature_deletion"]


def seed_young(config: Path, tmp_path: Path) -> None:
    """Three segments two days old, and the camera's newest an hour ago (the pressure floor
    keeps that one)."""
    now = int(time.time()) * 1000
    footage = [{"camera": "door", "start_ms": now - 2 * DAY_MS + i * 2000} for i in range(3)]
    seed(config, [*footage, {"camera": "door", "start_ms": now - 3_600_000}], tmp_path / "cache")


def test_a_cli_purge_deleting_inside_min_days_is_listed_by_alerts_and_the_api(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, [CAMERA], volumes=[volume(tmp_path, True)])
    seed_young(config, tmp_path)
    purged = run_cli(config, "purge", "--json")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["deleted"] >= 3  # the two-day-old ones
    [event] = premature_listed(config)
    assert event["severity"] == "critical" and event["event"], event
    assert event["labels"] == {"camera": "door"}
    assert event["last_notified"] is None, "no channel has it yet: the CLI reaches none"
    with serve(config) as api:
        listed = api.client("viewer").get("/api/alerts").json()
    assert [a["name"] for a in listed["recent"]] == ["premature_deletion"], listed


def test_a_daemon_beside_sends_a_cli_purges_premature_deletion_once(
    tmp_path: Path, daemon_factory, monkeypatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    hook = WebhookPeer([200])
    try:
        channels = f'\n[alerts]\ncheck_seconds = 1\n\n[alerts.webhook]\nurl = "{hook.url}"\n'
        # The daemon's volume is not under pressure; the operator's purge runs with a config
        # (same catalog and volume) that allows it one byte of footage.
        daemon_config = write_config(tmp_path, [CAMERA], volumes=[volume(tmp_path, False)])
        daemon_config.write_text(daemon_config.read_text() + channels)
        cli_config = write_config(
            tmp_path, [CAMERA], volumes=[volume(tmp_path, True)], name="purge.toml"
        )
        seed_young(daemon_config, tmp_path)
        daemon = daemon_factory(daemon_config)
        purged = run_cli(cli_config, "purge", "--json")
        assert purged.returncode == 0, purged.stderr
        assert json.loads(purged.stdout)["deleted"] >= 3  # the two-day-old ones

        def sent() -> list[dict]:
            return [
                a
                for r in hook.requests
                for a in r["json"]["alerts"]
                if a["labels"]["alertname"] == "premature_deletion"
            ]

        wait_for(sent, 15, what="the daemon sends the CLI's premature_deletion")
        daemon.wait_event("alert.event_sent", timeout=5, alert="premature_deletion")
        time.sleep(3)  # three more checks: it is not sent again
        assert len(sent()) == 1, sent()
        [event] = premature_listed(daemon_config)
        assert event["last_notified"] is not None and event["notifications"] == 1, event
        assert daemon.stop() == 0
    finally:
        hook.close()
