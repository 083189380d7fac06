"""Shared fixtures: write a real config, run the real CLI and the real daemon as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from psycopg.conninfo import conninfo_to_dict

from ccvault.catalog import db
from tests.peers import running_peers
from tests.peers.pg_fixture import APP_ROLE, pg_database, postgres_server  # noqa: F401
from tests.peers.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
CCVAULT = [sys.executable, "-m", "ccvault"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


def write_config(
    root: Path,
    cameras: list[dict[str, Any]],
    *,
    segment_seconds: int = 2,
    offline_after: int = 6,
    timezone: str = "UTC",
    volumes: list[dict[str, Any]] | None = None,
    rescan_seconds: int = 2,
    name: str = "ccvault.toml",
    spool: Path | None = None,
    catalog: db.Target | None = None,
) -> Path:
    """A config for a test: catalog and one hot volume under root unless volumes are given.
    `catalog`: another SQLite file, or a PostgreSQL database (this node's files in
    root/state)."""
    volumes = volumes or [{"name": "hot", "path": str(root / "hot"), "role": "hot"}]
    lines = [f"timezone = {toml_value(timezone)}", "", "[storage]"]
    if isinstance(catalog, db.PgCatalog):
        lines += [
            f"catalog = {toml_value(catalog.url)}",
            f"state_dir = {toml_value(root / 'state')}",
        ]
        if catalog.password_file is not None:
            lines.append(f"catalog_password_file = {toml_value(catalog.password_file)}")
        if catalog.sslmode is not None:
            lines.append(f"catalog_sslmode = {toml_value(catalog.sslmode)}")
        if catalog.sslrootcert is not None:
            lines.append(f"catalog_sslrootcert = {toml_value(catalog.sslrootcert)}")
    else:
        lines.append(f"catalog = {toml_value(catalog or root / 'catalog.sqlite')}")
    if spool is not None:
        lines.append(f"spool = {toml_value(spool)}")
    for volume in volumes:
        lines += ["", "[[storage.volumes]]", *(f"{k} = {toml_value(v)}" for k, v in volume.items())]
    lines += [
        "",
        "[recording]",
        f"segment_seconds = {segment_seconds}",
        f"offline_after_seconds = {offline_after}",
        f"rescan_seconds = {rescan_seconds}",
    ]
    # Port 0: each test daemon's HTTP API gets a free port (its http.listening event says which).
    lines += ["", "[http]", 'listen = "127.0.0.1:0"']
    for camera in cameras:
        lines += ["", "[[cameras]]", *(f"{k} = {toml_value(v)}" for k, v in camera.items())]
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_target(request: pytest.FixtureRequest, tmp_path: Path) -> db.Target:
    """A new, empty catalog on each backend: a SQLite file, or a PostgreSQL database of its
    own (the session's server) reached as ccvault would be: a URL without the password, the
    password in a 0600 file."""
    if request.param == "sqlite":
        return tmp_path / "catalog.sqlite"
    return pg_catalog(
        request.getfixturevalue("postgres_server"), request.getfixturevalue("pg_database"), tmp_path
    )


def pg_catalog(server: PostgresServer, url: str, directory: Path) -> db.PgCatalog:
    """The catalog target of the database at `url`: the URL without its password, and a
    password file in `directory`."""
    name = conninfo_to_dict(url)["dbname"]
    passfile = server.write_passfile(directory / "pgpass", APP_ROLE)
    return db.PgCatalog(server.url(APP_ROLE, str(name), password=False), password_file=passfile)


def run_cli(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    argv = [*CCVAULT, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def cli_json(config: Path, *args: str) -> Any:
    result = run_cli(config, *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def open_segment_has_a_fragment(root: Path, camera: str) -> bool:
    """The segment being recorded already holds footage on disk (a few frames)."""
    from ccvault.storage.media import ProbeError, probe

    files = sorted((root / "hot" / ".spool" / camera).glob("*/*.mp4"))
    try:
        return bool(files) and probe(files[-1]).frames >= 3
    except (ProbeError, FileNotFoundError):
        return False


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Polls predicate() until it returns something truthy, which is returned. The timeout
    only ends a wait for what must happen anyway: be generous, the machine may be loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def event_ms(event: dict[str, Any]) -> int:
    """When the daemon logged an event (its ISO UTC `timestamp`), in epoch ms."""
    return round(
        datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
    )


class Session:
    """`ccvault` commands in one warm process: tests/crash_step.py's session mode runs each through
    `ccvault.cli.main` with a fresh App, as a new process would, without the interpreter start
    and imports (seconds per command on a busy machine). One command at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_step", "session"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def run(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(["--config", str(config), *args]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"ccvault session died ({self.proc.poll()}) running {args}"
        reply = json.loads(line)
        return subprocess.CompletedProcess(
            ["ccvault", *args], reply["rc"], reply["stdout"], reply["stderr"]
        )

    def json(self, config: Path, *args: str) -> Any:
        result = self.run(config, *args, "--json")
        assert result.returncode == 0, (args, result.returncode, result.stderr[-3000:])
        return json.loads(result.stdout)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Daemon:
    """`ccvault run` as a child process, its JSON log lines collected as they arrive."""

    def __init__(
        self, config: Path, env: dict[str, str] | None = None, wrapper: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.env = env
        self.wrapper = wrapper  # a command that runs the daemon, e.g. prlimit's limits
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._collector: threading.Thread | None = None

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [*self.wrapper, *CCVAULT, "--config", str(self.config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, **(self.env or {})},
        )
        self._collector = threading.Thread(target=self._collect, args=(self.proc,), daemon=True)
        self._collector.start()
        self.wait_event("daemon.ready", timeout=60)
        return self

    def _collect(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.raw.append(line)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait_event(self, name: str, timeout: float, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in list(self.events):
                if event.get("event") == name and all(event.get(k) == v for k, v in fields.items()):
                    return event
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}):\n" + "".join(self.raw[-30:])
                )
            return None

        try:
            return wait_for(found, timeout, what=f"event {name} {fields}")
        except AssertionError as exc:
            recent = "\n".join(json.dumps(e)[:300] for e in self.events[-15:])
            raise AssertionError(f"{exc}; recent events:\n{recent}") from None

    def count(self, name: str, **fields: Any) -> int:
        return sum(
            1
            for e in list(self.events)
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
        )

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            self.drain()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float) -> int:
        """Its exit code; a daemon that has not exited by then fails with its stacks."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit within {timeout} s:\n{self._stacks()}") from None
        self.drain()
        return code

    def _stacks(self) -> str:
        """A daemon that hangs: the end of its log, then every thread's stack (its SIGUSR1;
        the main thread's comes last, down to `python -m`'s frame)."""
        assert self.proc is not None
        mark = len(self.raw)
        self.proc.send_signal(signal.SIGUSR1)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: "in _run_module_as_main" in "".join(self.raw[mark:]), 5, what="stacks")
        self.kill9()
        return "".join(self.raw[max(0, mark - 30) :])

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.drain()

    def drain(self) -> None:
        """Once the process has exited: wait until every line it wrote is in raw/events
        (what is checked after a stop must see the whole log, not most of it)."""
        if self._collector is not None:
            self._collector.join(30)

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def recorder_pids(self) -> list[int]:
        return [c.pid for c in self.descendants() if "segment" in " ".join(c.cmdline())]


@pytest.fixture(autouse=True)
def _peers_end_with_their_test() -> Iterator[None]:
    """A peer a test started and left running is stopped when the test ends. A live RTSP
    camera encodes all the time (each shared path is kept playing: tests/peers/rtsp_server.py),
    and the cameras tests left to the end of the session took a core by its middle. A module
    or session fixture's peers were started before the test: they stay."""
    before = running_peers()
    yield
    for peer in running_peers() - before:
        peer.stop()


@pytest.fixture
def daemon_factory() -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(
        config: Path, env: dict[str, str] | None = None, wrapper: tuple[str, ...] = ()
    ) -> Daemon:
        daemon = Daemon(config, env, wrapper)
        started.append(daemon)
        return daemon.start()

    yield make
    for daemon in started:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with more tests marked slow first, each module's tests together and in order.
    Under `pytest -n 2 --dist loadfile` (scripts/test) a process takes one module at a time:
    the long ones first, so the short ones at the end even out the two processes."""
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # stable: collection order otherwise


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/ from what the code does now (review the diff).",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True under `pytest --update-goldens`: golden tests write their file instead of comparing."""
    return bool(request.config.getoption("--update-goldens"))
