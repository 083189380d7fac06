"""Issue 14, item 7: imports are accountable.

Imported footage carries times someone claimed, not times a recorder saw. So every import is
in the audit log (who, the file's SHA-256, camera, claimed start); a claim no camera could have
recorded — footage reaching into the future, or from before the camera was installed — is
refused unless overridden with a reason that is audited too; and imported footage is marked
wherever footage is shown or handed over.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ccvault.catalog.audit import AuditLog
from tests.api_peer import serve
from tests.conftest import cli_json, run_cli, write_config
from tests.peers import make_clip

ZONE = "Asia/Tokyo"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "sd-card.mp4", 30, keyint_s=2.0)


def site(root: Path, *camera_keys: str) -> Path:
    """A site keeping footage ten years (so only the claimed times can refuse an import)."""
    root.mkdir(exist_ok=True)
    config = write_config(
        root,
        [{"name": "door", "url": "demo://", "enabled": False}],
        timezone=ZONE,
        segment_seconds=10,
    )
    text = config.read_text() + "".join(f"{line}\n" for line in camera_keys)
    config.write_text(
        text + "\n[retention]\ncontinuous_days = 3650\nmotion_days = 3650\nmax_days = 3650\n"
    )
    return config


def imported(config: Path, *args: str) -> Any:
    return run_cli(config, "import", "--camera", "door", *args)


def stored(config: Path) -> list[dict[str, Any]]:
    found = run_cli(config, "segments", "--camera", "door", "--from", "2000-01-01T00:00:00Z",
                    "--to", "9999-01-01T00:00:00Z", "--json")  # fmt: skip
    return json.loads(found.stdout) if found.returncode == 0 else []


def audit(config: Path, action: str) -> list[dict[str, Any]]:
    path = config.parent / "audit.jsonl"
    return [r for r in AuditLog(path).records() if r["action"] == action] if path.exists() else []


def test_an_import_claiming_footage_from_the_future_is_refused(tmp_path, clip) -> None:
    config = site(tmp_path)
    # Ten years ahead, an hour ahead, and a start 10 s ago for 30 s of footage: each claims
    # pictures of a moment that has not happened yet.
    for start in ("+3650d", "+1h", "-10s"):
        refused = imported(config, "--start", start, str(clip))
        assert refused.returncode == 4, (start, refused.stderr)
        assert "ccvault: error: import" in refused.stderr and "future" in refused.stderr
        assert "--allow-time" in refused.stderr
    assert stored(config) == [], "a refused import writes nothing"
    assert imported(config, "--start", "-31s", str(clip)).returncode == 0, "ended by now: fine"


def test_an_import_from_before_the_camera_was_installed_is_refused(tmp_path, clip) -> None:
    # A TOML date is local midnight in the site's zone; a date-time without an offset is local
    # time there too; one with an offset is that instant.
    for i, (installed, just_before, first) in enumerate(
        (
            ("installed = 2026-06-01", "2026-05-31T23:59:59", "2026-06-01T00:00:00"),
            ("installed = 2026-06-01T09:30:00", "2026-06-01T09:29:59", "2026-06-01T09:30:00"),
            ("installed = 2026-06-01T00:30:00Z", "2026-06-01T09:29:59", "2026-06-01T09:30:00"),
        )
    ):
        config = site(tmp_path / str(i), installed)
        assert run_cli(config, "check-config").returncode == 0
        before = imported(config, "--start", just_before, str(clip))
        assert before.returncode == 4, (installed, before.stderr)
        assert "installed" in before.stderr and "--allow-time" in before.stderr
        assert stored(config) == []
        assert imported(config, "--start", first, str(clip)).returncode == 0, installed
    bad = site(tmp_path / "bad", 'installed = "last spring"')
    checked = run_cli(bad, "check-config")
    assert checked.returncode == 2 and "cameras[0].installed" in checked.stderr


def test_an_import_outside_the_camera_s_times_needs_a_reason_which_is_audited(
    tmp_path, clip
) -> None:
    config = site(tmp_path, "installed = 2026-06-01")
    blank = imported(config, "--start", "2026-01-01T10:00:00", "--allow-time", " ", str(clip))
    assert blank.returncode == 2 and "--allow-time" in blank.stderr
    reason = "the camera's clock ran a year behind; footage is from 2026-11-30"
    done = imported(config, "--start", "2025-11-30T10:00:00", "--allow-time", reason, str(clip))
    assert done.returncode == 0, done.stderr
    records = audit(config, "import.file")
    assert len(records) == 1
    details = records[0]["details"]
    assert details["time_allowed"] == reason
    assert "installed" in details["time_problem"]
    assert details["start"] == "2025-11-30T01:00:00.000Z"


def test_every_import_is_audited_with_who_the_file_the_camera_and_the_claimed_start(
    tmp_path, clip
) -> None:
    config = site(tmp_path)
    done = imported(config, "--start", "2026-11-30T10:00:00", str(clip), "--json")
    assert done.returncode == 0, done.stderr
    records = audit(config, "import.file")
    assert len(records) == 1, records
    record = records[0]
    assert record["actor"].startswith("cli:")
    assert record["object"] == "camera:door"
    details = record["details"]
    assert details["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert details["camera"] == "door" and details["file"] == clip.name
    assert details["start"] == "2026-11-30T01:00:00.000Z"  # 10:00 in Tokyo
    assert details["end"] == "2026-11-30T01:00:30.000Z"
    assert "time_allowed" not in details
    stored_ids = {s["id"] for s in stored(config)}
    result = audit(config, "import.stored")
    assert len(result) == 1 and set(result[0]["details"]["segment_ids"]) == stored_ids
    # The same file again at the same start is a no-op, and changes nothing to audit.
    again = imported(config, "--start", "2026-11-30T10:00:00", str(clip), "--json")
    assert json.loads(again.stdout)["files"][0]["status"] == "already imported"
    assert len(audit(config, "import.file")) == 1


def test_imported_footage_is_marked_in_segments_the_api_and_export_manifests(
    tmp_path, clip
) -> None:
    config = site(tmp_path)
    assert imported(config, "--start", "-1h", str(clip)).returncode == 0
    segments = stored(config)
    assert segments and {s["origin"] for s in segments} == {"imported"}
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:  # one as if recorded live
        conn.execute("UPDATE segments SET origin = 'recorded' WHERE id = ?", (segments[0]["id"],))
    table = run_cli(config, "segments", "--camera", "door", "--from", "-2h", "--to", "now")
    rows = table.stdout.splitlines()
    assert "origin" in rows[0]
    assert "recorded" in rows[1] and all("imported" in r for r in rows[2:]), table.stdout
    with serve(config) as api, api.client("viewer") as viewer:
        found = viewer.get("/api/segments", params={"camera": "door", "from": "-2h", "to": "now"})
        assert [s["origin"] for s in found.json()] == [
            "recorded",
            *["imported"] * (len(segments) - 1),
        ]
    out = tmp_path / "exports" / "sd"
    made = run_cli(config, "export", "--camera", "door", "--from", "-2h", "--to", "now",
                   "--out", str(out), "--reason", "r")  # fmt: skip
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "manifest.json").read_bytes())
    originals = [f for f in manifest["files"] if f["name"].startswith("segments/")]
    assert [f["origin"] for f in originals] == ["recorded", *["imported"] * (len(originals) - 1)]
    assert cli_json(config, "verify-export", str(out))["ok"] is True
