"""Issue 14, item 4: HTTP clients cannot take the descriptors recording needs. Slow connections
exhausted the daemon's open files, and ingest — which opens files all the time — stalled with
them. Now the daemon raises its soft open-files limit to the hard one at start
(`host.descriptors.raise_soft_limit`: the usual 1024 is for select(), which nothing here
uses), the HTTP server holds at most `max_connections`, and start-up is refused unless the
limit covers two descriptors per connection plus a reserve for recording and ingest
(`descriptors.check_budget`). The unit sets the limit (`LimitNOFILE=`)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ccvault.config.model import HttpConfig
from ccvault.host.descriptors import budget
from tests.api_peer import connect, with_http
from tests.conftest import CCVAULT, REPO, Daemon, wait_for, write_config

SOFT, HARD = 256, 1536  # a low soft limit, as systemd's default gives; the unit's hard one
FLOOD = 1200
LIMITED = ("prlimit", f"--nofile={SOFT}:{HARD}", "--")


def unit_limit() -> int:
    text = (REPO / "systemd" / "ccvault.service").read_text()
    found = re.findall(r"^LimitNOFILE=(\d+)$", text, re.M)
    assert found, "the unit sets no LimitNOFILE="
    return int(found[-1])


def open_files(pid: int) -> tuple[int, int]:
    """(soft limit, descriptors open) of a process."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    soft = int(re.search(r"^Max open files\s+(\d+)", limits, re.M).group(1))  # type: ignore[union-attr]
    return soft, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_a_connection_flood_cannot_take_the_descriptors_recording_needs(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    assert unit_limit() >= budget(HttpConfig().max_connections)
    config = with_http(
        write_config(tmp_path, [{"name": "door", "url": "demo://"}]),
        max_connections=200,
        max_connections_per_client=FLOOD,
        request_timeout_seconds=120,
    )
    daemon = daemon_factory(config, wrapper=LIMITED)
    assert daemon.proc is not None
    soft, _ = open_files(daemon.proc.pid)
    assert soft == HARD, f"the soft limit stayed {soft}"
    url = daemon.wait_event("http.listening", 10)["url"]
    daemon.wait_event("segment.ingested", 30)
    flood = []
    for _ in range(FLOOD):  # each sends the start of a request and waits there
        sock = connect(url)
        with contextlib.suppress(OSError):  # refused at accept: closed under us
            sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        flood.append(sock)
    try:
        before = daemon.count("segment.ingested")
        wait_for(
            lambda: daemon.count("segment.ingested") >= before + 3,
            60,
            what="recording to go on under the flood",
        )
        _, in_use = open_files(daemon.proc.pid)
        assert in_use <= budget(200), in_use
    finally:
        for sock in flood:
            sock.close()
    assert not [line for line in daemon.raw if "Too many open files" in line]
    assert daemon.stop() == 0


def test_a_limit_too_low_for_the_connections_refuses_to_start(tmp_path: Path) -> None:
    config = with_http(
        write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}]),
        max_connections=1000,  # 2 × 1000 + the reserve > the hard limit
    )
    done = subprocess.run(
        [*LIMITED, *CCVAULT, "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "http.max_connections" in done.stderr and str(HARD) in done.stderr, done.stderr
