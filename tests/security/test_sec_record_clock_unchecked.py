"""A clock nobody can vouch for is said so, not skipped in silence (issue 14, item 9).

Footage timestamps are evidence. On a host with neither systemd-timesyncd nor chrony, the
daemon cannot tell whether its clock is synchronised: that is the `clock_unchecked` warning in
`ccvault alerts`, until an operator turns the check off on purpose (`[alerts] clock_sync =
"off"`), which silences it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ccvault.views.health import TIMESYNC_DIR, clock_synced
from tests.conftest import cli_json, write_config

CAMERA = {"name": "door", "url": "demo://?width=320&height=180"}


def path_without_chrony() -> str:
    return os.pathsep.join(
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not (Path(d) / "chronyc").exists()
    )


def firing(config: Path) -> dict[str, dict]:
    return {a["name"]: a for a in cli_json(config, "alerts")["active"]}


@pytest.mark.slow
def test_a_host_without_timesyncd_or_chrony_raises_clock_unchecked(
    tmp_path: Path, daemon_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    if TIMESYNC_DIR.is_dir():
        pytest.skip(f"{TIMESYNC_DIR} exists here: the daemon would read it")
    env = {"PATH": path_without_chrony()}
    monkeypatch.setenv("PATH", env["PATH"])
    assert shutil.which("chronyc") is None
    assert clock_synced("auto", tmp_path / "no-timesyncd") is None  # nothing here can tell

    config = write_config(tmp_path, [CAMERA])
    base = config.read_text()
    config.write_text(base + "\n[alerts]\ncheck_seconds = 1\n")
    daemon = daemon_factory(config, env)
    fired = daemon.wait_event("alert.fired", timeout=10, alert="clock_unchecked")
    assert fired["level"] == "warning", fired
    listed = firing(config)["clock_unchecked"]
    assert listed["severity"] == "warning"
    assert "timesyncd" in listed["summary"] and "chrony" in listed["summary"], listed
    assert daemon.stop() == 0

    config.write_text(base + '\n[alerts]\ncheck_seconds = 1\nclock_sync = "off"\n')
    daemon = daemon_factory(config, env)
    daemon.wait_event("alert.resolved", timeout=30, alert="clock_unchecked")
    assert "clock_unchecked" not in firing(config)
    assert daemon.stop() == 0
