"""A real S3 peer: Ceph's RADOS Gateway on a one-node micro cluster (``scripts/s3-test-server``).

Nothing here is a mock: ``S3Server`` runs the script, which starts ceph-mon, a memstore
ceph-osd and radosgw as detached processes on free loopback ports, and parses the
``S3_ENDPOINT`` / ``S3_ACCESS_KEY`` / ``S3_SECRET_KEY`` lines it prints.

The daemons are not our children (the script exits once the gateway answers), so the usual
child bookkeeping of tests.peers cannot reach them. Three things stop them instead:

* ``stop()`` (also ``with S3Server() as s3:`` and the ``s3_server`` fixture) runs
  ``scripts/s3-test-server --stop DIR``;
* the server registers with tests.peers, whose atexit hook calls ``stop()`` for any peer a test
  forgot;
* we pass ``--owner <our pid>``: the script's watchdog stops the cluster when this interpreter
  exits in a way atexit never sees (SIGKILL, a crash).

The first start on a machine without Ceph installs ``radosgw ceph-mon ceph-osd`` with apt
(~30-60 s, or longer while another apt holds the lock); later starts take ~1.5-2.5 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.peers import PeerError, _live_peers, _Peer

__all__ = ["SCRIPT", "S3Server"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "s3-test-server"
# A first start may wait for another apt (the script's lock timeout is 900 s), then install.
START_TIMEOUT_S = 1200.0
STOP_TIMEOUT_S = 30.0
REGION = "us-east-1"
REQUIRED = {"S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"}  # what the script must print


class S3Server(_Peer):
    """One RGW cluster for a test session: ``start(dir)`` then ``.endpoint``, ``.access_key``,
    ``.secret_key`` and ``client()`` for a boto3 client set up the way RGW needs.

    ``memstore_bytes`` caps the OSD's RAM store (the script's default is 2 GiB): size it for
    the test data, since everything stored lives in RAM until ``stop()``.
    """

    def __init__(self, *, memstore_bytes: int | None = None, port: int | None = None) -> None:
        self.memstore_bytes = memstore_bytes
        self.port = port
        self.endpoint: str | None = None
        self.access_key: str | None = None
        self.secret_key: str | None = None
        self.directory: Path | None = None
        self.start_seconds: float | None = None  # start to first S3 answer, as the script saw it
        self.stderr = ""  # the script's progress lines from the last start (for messages)
        self._own_dir = False

    def command(self, directory: Path) -> list[str]:
        """The start command line (also what to run by hand for the same cluster)."""
        cmd = [sys.executable, str(SCRIPT), "--owner", str(os.getpid())]
        if self.port is not None:
            cmd += ["--port", str(self.port)]
        return [*cmd, str(directory)]

    def start(self, directory: str | os.PathLike[str] | None = None) -> S3Server:
        """Start the cluster in ``directory`` (default: a temp dir removed by ``stop()``) and
        wait until it answers S3. Idempotent while running; raises PeerError on failure."""
        if self.running:
            return self
        self.stop()
        self._own_dir = directory is None
        d = Path(tempfile.mkdtemp(prefix="ccvault-s3-")) if directory is None else Path(directory)
        self.directory = d.resolve()
        env = dict(os.environ)
        if self.memstore_bytes is not None:
            env["CCVAULT_S3_MEMSTORE_BYTES"] = str(self.memstore_bytes)
        # Registered before the start, so a test interrupted meanwhile still stops it at exit.
        _live_peers.add(self)
        try:
            res = subprocess.run(
                self.command(self.directory),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
            self.stop(keep_dir=True)
            msg = f"s3-test-server did not finish in {START_TIMEOUT_S:.0f} s:\n{err}"
            raise PeerError(msg) from None
        except BaseException:  # pytest-timeout, ^C: nothing may stay running
            self.stop()
            raise
        self.stderr = res.stderr
        values = dict(
            line.split("=", 1) for line in res.stdout.splitlines() if line.startswith("S3_")
        )
        if res.returncode != 0 or not values.keys() >= REQUIRED:
            self.stop(keep_dir=True)
            tail = "\n".join(res.stderr.splitlines()[-40:])
            raise PeerError(f"s3-test-server failed (exit {res.returncode}):\n{tail}")
        self.endpoint = values["S3_ENDPOINT"]
        self.access_key, self.secret_key = values["S3_ACCESS_KEY"], values["S3_SECRET_KEY"]
        m = re.search(r"answering after ([0-9.]+) s", res.stderr)
        self.start_seconds = float(m.group(1)) if m else None
        return self

    def stop(self, *, keep_dir: bool = False) -> None:
        """Stop the daemons and remove the directory if start() made it (unless ``keep_dir``:
        a failed start keeps it for its logs). Safe to call twice."""
        d, self.directory = self.directory, None
        self.endpoint = self.access_key = self.secret_key = None
        _live_peers.discard(self)
        if d is None:
            return
        res = subprocess.run(
            [sys.executable, str(SCRIPT), "--stop", str(d)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_S,
            check=False,
        )
        if self._own_dir and not keep_dir:
            shutil.rmtree(d, ignore_errors=True)
        if res.returncode != 0:
            raise PeerError(f"s3-test-server --stop {d} failed:\n{res.stderr}")

    @property
    def running(self) -> bool:
        """Whether the gateway process recorded for our directory is still alive."""
        if self.directory is None:
            return False
        try:
            pid = int((self.directory / "pids" / "rgw.pid").read_text())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return False
        return str(self.directory / "ceph.conf").encode() in argv

    def log_tail(self, name: str = "client.rgw", lines: int = 40) -> str:
        """Last lines of a daemon's log (client.rgw, osd.0, mon.a), for assertion messages."""
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "log" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server: path-style addressing, region us-east-1.

        Checksums only when an operation requires them or the caller asks: boto3 >= 1.36 by
        default sends every upload over HTTPS as aws-chunked with a trailing CRC32, which RGW 16
        refuses (411 MissingContentLength); over plain HTTP it sends a header RGW ignores. So
        this is the setting that works with RGW 16 either way. Bounded timeouts so a stuck
        gateway fails a test rather than hanging it. ``config`` adds or overrides botocore
        Config options (e.g. ``retries={"max_attempts": 1}``).
        """
        if self.endpoint is None:
            raise PeerError("S3Server is not running: start() it first")
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "connect_timeout": 5,
            "read_timeout": 60,
        }
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(**options),
        )
