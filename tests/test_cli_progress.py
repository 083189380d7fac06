"""Every long command draws a progress bar on a terminal — run here under a real
pseudo-terminal — and nothing of it with --json or when stderr is a pipe; the scrub logs one
summary event now and then, not a line a segment."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import termios
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ccvault.catalog.audit import audit_log
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.loading import load
from ccvault.storage.integrity import REPORT_S, Scrubber
from ccvault.storage.volumes import open_volumes
from ccvault.timefmt import utc_text
from tests.conftest import CCVAULT, REPO, run_cli, write_config
from tests.peers import make_clip
from tests.retention_seed import DAY_MS, seed

BAR = "━"  # rich's bar: drawn only for a terminal


def on_a_terminal(config: Path, *args: str) -> tuple[int, str, str]:
    """Run a command with stderr on a pseudo-terminal (100 columns), stdout on a pipe:
    (exit code, what the terminal showed, stdout)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [*CCVAULT, "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=REPO,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"},
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=120), shown.decode(errors="replace"), stdout


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, list, Path]:
    """A camera with ten recent segments and five past continuous_days, and a clip to
    import."""
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        volumes=[
            {
                "name": "hot",
                "path": str(tmp_path / "hot"),
                "role": "hot",
                "reserve_free_bytes": 0,
                "reserve_free_percent": 0,
            }
        ],
    )
    now = int(datetime.now(UTC).timestamp() * 1000)
    footage = [{"camera": "door", "start_ms": now - 3_600_000 + i * 10_000} for i in range(10)]
    footage += [{"camera": "door", "start_ms": now - 20 * DAY_MS + i * 10_000} for i in range(5)]
    segments = seed(config, footage, tmp_path / "cache")
    clip = make_clip(tmp_path / "clip.mp4", 6, 160, 90, fps=5, keyint_s=1.0)
    return config, segments, clip


def _commands(site: tuple[Path, list, Path], tmp_path: Path) -> list[tuple[list[str], str]]:
    _config, segments, clip = site
    recent = segments[0]
    return [
        (["verify"], "verifying"),
        (["reconcile"], "reconciling"),
        (["backup", str(tmp_path / "backups")], "backing up"),
        (["purge"], "purging"),
        (["import", "--camera", "door", "--start", "-3d", str(clip)], "importing"),
        (
            [
                "export",
                "--camera",
                "door",
                "--from",
                utc_text(recent.start_ms),
                "--to",
                utc_text(recent.start_ms + 20_000),
                "--reason",
                "progress test",
                "--out",
                str(tmp_path / "exports" / "bundle"),
            ],
            "exporting",
        ),
        (["exports", "--verify"], "verifying exports"),  # after the export: one to check
    ]


def test_every_long_command_shows_a_bar_on_a_terminal(site, tmp_path: Path) -> None:
    config = site[0]
    for args, label in _commands(site, tmp_path):
        code, shown, _stdout = on_a_terminal(config, *args)
        assert code == 0, (args, shown)
        assert label in shown and BAR in shown, (args, shown)
        if args[0] in ("verify", "backup"):
            assert "KiB / " in shown or "MiB / " in shown, shown  # binary units, done / total
        if args[0] == "import":
            assert "of footage" in shown, shown


def test_no_bar_with_json_or_when_stderr_is_not_a_terminal(site, tmp_path: Path) -> None:
    config = site[0]
    commands = _commands(site, tmp_path)
    for (args, label), other in zip(commands, ("a", "b", "c", "d", "e", "f", "g"), strict=True):
        if args[0] in ("backup", "export"):  # a second run writes elsewhere
            args = [*args[:-1], f"{args[-1]}-{other}"]
        code, shown, stdout = on_a_terminal(config, *args, "--json")
        assert code == 0, (args, shown)
        assert BAR not in shown and label not in shown, (args, shown)
        json.loads(stdout)  # stdout holds JSON only
    for args, label in commands[:4]:
        if args[0] == "backup":
            args = [*args[:-1], f"{args[-1]}-piped"]
        piped = run_cli(config, *args)
        assert piped.returncode == 0, piped.stderr
        assert BAR not in piped.stderr and label not in piped.stderr, piped.stderr


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def wall_ms(self) -> int:
        return int(datetime.now(UTC).timestamp() * 1000)

    def monotonic(self) -> float:
        return self.seconds


def test_the_scrub_logs_one_summary_an_hour_not_a_line_a_segment(site) -> None:
    config = load(site[0]).config
    writer = CatalogWriter(config.catalog_target, audit_log(config))
    clock = Clock()
    volumes = open_volumes(config, writer, clock.wall_ms())
    scrubber = Scrubber(writer, lambda: volumes, clock, mb_per_s=1000)
    with capture_logs() as events:
        for _ in range(15):
            clock.seconds += 10
            assert scrubber.scrub_next()
        quiet = list(events)
        clock.seconds += REPORT_S
        assert scrubber.scrub_next()  # the 16th segment: the first of the next round
    writer.close()
    assert quiet == []
    (summary,) = events
    assert summary["event"] == "scrub.progress"
    assert (summary["segments"], summary["ok"]) == (16, 16)
    assert summary["bytes"] > 0 and "corrupt" not in summary
