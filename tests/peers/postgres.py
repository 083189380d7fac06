"""A real PostgreSQL 15 server for tests: its own cluster in a temp dir, on a loopback port.

No mocks and no system service: ``initdb`` makes a fresh cluster and ``postgres`` runs as a
child of the test process (its own session, registered with ``tests.peers._spawn`` so a run
that forgets it still kills it at exit). Not ``pg_ctl start``: that detaches the postmaster,
so nobody would reap it or notice at once that it died; ``start()`` waits for what
``pg_ctl -w`` waits for (postmaster.pid saying "ready") and ``stop()`` sends the signals
``pg_ctl stop -m fast|smart|immediate`` sends. Debian's ``postgresql-15`` package provides the
binaries (``/usr/lib/postgresql/15/bin``); the package's own cluster (port 5432, if any) is
never used or touched.

Authentication, so both paths ccvault uses are real:

* the superuser ``postgres`` connects only over the unix socket, ``trust`` (the test's own
  admin path: create roles and databases without a password);
* roles made by :meth:`PostgresServer.create_role` connect over TCP to 127.0.0.1 with a
  password checked by SCRAM-SHA-256, given in the URL or through a libpq password file
  (:meth:`PostgresServer.write_passfile`).

PostgreSQL refuses to run as root. When the test process is root (CI), initdb and the server
run as the unprivileged ``postgres`` user that Debian's package creates (``Popen(user=...)``,
no ``runuser``/PAM), and the cluster lives in a directory that user owns.

Durability is left as in production (``fsync=on``) because ccvault's tests stop and kill the
server mid-recording; ``fast=True`` turns fsync, synchronous_commit and full_page_writes off
for benches that do not test durability.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

from . import PeerError, _Peer, _spawn, _terminate, free_port, self_signed

__all__ = ["PG_BIN", "PostgresServer", "postgres_available"]

PG_BIN = Path(os.environ.get("CCVAULT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
# The OS user the server runs as when the tests run as root (Debian's package creates it).
PG_OS_USER = os.environ.get("CCVAULT_TEST_PG_USER", "postgres")
SUPERUSER = "postgres"
READY_TIMEOUT_S = 60.0  # crash recovery after kill() on a loaded 2-core CI box included
STOP_TIMEOUT_S = 30.0
# A unix socket path is at most 107 bytes; postgres appends "/.s.PGSQL.NNNNN" (15).
MAX_SOCKET_DIR = 80
# Small and quiet, but otherwise as shipped: these only size the server for a test box.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "32MB",
    "max_connections": "50",
    "huge_pages": "off",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_min_messages": "warning",
    "timezone": "UTC",
}
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# Servers started and not yet closed, so atexit can stop them and delete their temp dirs.
_servers: set[PostgresServer] = set()


def postgres_available() -> bool:
    """True when the PostgreSQL binaries are installed (and, as root, the user to run them)."""
    if not all((PG_BIN / exe).is_file() for exe in ("initdb", "postgres")):
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            return False
    return True


@atexit.register
def _close_all() -> None:
    """Stop every server still running; registered after tests.peers' hook, so it runs first."""
    for server in list(_servers):
        with contextlib.suppress(Exception):  # best effort at exit
            server.close()


class PostgresServer(_Peer):
    """One PostgreSQL cluster: ``start()`` (initdb on first use), ``stop()``, ``kill()``.

    ``tls=True``: the server takes TLS connections (``ssl=on``) with a certificate for
    DNS:localhost only, made at the first start; ``ca_file`` is the CA that vouches for it.

    The port is picked once (or given) and kept across restarts, so URLs handed to a daemon
    stay valid when a test stops the server and starts it again. ``timings`` records how long
    initdb and each start took (seconds), for the benches and for spotting a slow CI box.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        fast: bool = False,
        settings: Mapping[str, str | int] | None = None,
        tls: bool = False,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.fast = fast
        self.tls = tls
        self.ca_file: Path | None = None  # with tls: the certificate's CA (it signs itself)
        self.settings: dict[str, str] = {**BASE_SETTINGS, **(FAST_SETTINGS if fast else {})}
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.directory: Path | None = None
        self.socket_dir: Path | None = None
        self.timings: dict[str, float] = {}
        self._owned: list[Path] = []  # temp dirs this object made, deleted by close()
        self._passwords: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam(PG_OS_USER)
            except KeyError as e:
                raise PeerError(
                    f"running as root, but there is no user {PG_OS_USER!r} to run PostgreSQL "
                    "as (install postgresql-15, or set CCVAULT_TEST_PG_USER)"
                ) from e

    # ----------------------------------------------------------------- paths

    @property
    def data_dir(self) -> Path:
        return self._dir() / "data"

    @property
    def log_path(self) -> Path:
        """The server's whole stderr log, across restarts (kept for post-mortems)."""
        return self._dir() / "postgres.log"

    def _dir(self) -> Path:
        if self.directory is None:
            raise PeerError("PostgresServer has not been started yet")
        return self.directory

    def _prepare(self, directory: Path | None) -> None:
        """Pick the cluster's directory (and the socket's) the first time; check later ones."""
        if self.directory is not None:
            if directory is not None and Path(directory).resolve() != self.directory:
                raise ValueError(f"this server's cluster lives in {self.directory}")
            return
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="ccvault-pg-"))
            self._owned.append(directory)
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None and not _reachable(directory, self._run_as):
            raise PeerError(
                f"{directory} is not reachable by user {PG_OS_USER!r} (a parent directory is "
                "private to root, as pytest's tmp_path is): pass no directory, and the "
                "server makes its own under /tmp"
            )
        self._give(directory)
        sock = directory / "sock"
        if len(str(sock)) > MAX_SOCKET_DIR:
            sock = Path(tempfile.mkdtemp(prefix="ccvault-pgsock-"))
            self._owned.append(sock)
        sock.mkdir(exist_ok=True)
        self._give(sock)
        self.directory, self.socket_dir = directory, sock

    def _give(self, path: Path) -> None:
        """chown a directory we made to the user the server runs as (when we are root)."""
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        path.chmod(0o700)

    # ----------------------------------------------------------------- processes

    def _popen_kw(self) -> dict[str, Any]:
        """Run PostgreSQL's binaries as the unprivileged user when we are root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", TZ="UTC")
        kw: dict[str, Any] = {"env": env, "cwd": self._dir()}
        if self._run_as is not None:
            kw.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
            env.update(HOME=str(self._dir()), USER=PG_OS_USER, LOGNAME=PG_OS_USER)
        return kw

    def _initdb(self) -> None:
        """A fresh cluster: superuser trusted on the socket, SCRAM passwords over TCP.

        ``--no-sync`` only skips flushing the brand-new files once; the server itself keeps
        fsync on. Locale and encoding are fixed so the cluster is the same on every machine.
        """
        t0 = time.monotonic()
        cmd = [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        cmd += ["--auth-local=trust", "--auth-host=scram-sha-256"]
        cmd += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"]
        res = subprocess.run(
            cmd,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
            **self._popen_kw(),
        )
        if res.returncode != 0:
            out = (res.stdout + res.stderr).decode(errors="replace")
            raise PeerError(f"initdb failed ({res.returncode}):\n{out}")
        self.timings["initdb"] = time.monotonic() - t0

    def _certify(self) -> None:
        """The server's certificate and key (once), readable by the server's user only."""
        cert, key = self._dir() / "server.pem", self._dir() / "server.key"
        if not cert.exists():
            self_signed(self._dir(), "server")
            for path in (cert, key):
                if self._run_as is not None:
                    os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
                path.chmod(0o600)
        self.ca_file = cert
        self.settings.update(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key))

    def command(self) -> list[str]:
        """The server's command line (also handy for a manual run)."""
        settings = {**self.settings, "port": str(self.port)}
        settings["unix_socket_directories"] = str(self.socket_dir)
        cmd = [str(PG_BIN / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def start(self, directory: Path | None = None) -> PostgresServer:
        """initdb (first time only), start, and wait until it accepts connections. Idempotent.

        ``directory`` (only on the first start) holds the cluster; by default a new temp dir
        under /tmp that :meth:`close` deletes. After :meth:`kill` this runs crash recovery.
        """
        if self.running:
            return self
        self._prepare(directory)
        _servers.add(self)  # from here on, exit cleans up even if the start fails
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.tls:
            self._certify()
        t0 = time.monotonic()
        deadline = t0 + READY_TIMEOUT_S
        while True:
            err = self._try_start(deadline)
            if err is None:
                break
            # The port can be taken by someone else for a moment; any other error is final.
            if "could not bind" not in err or time.monotonic() > deadline:
                raise PeerError(f"PostgreSQL on port {self.port} did not start:\n{err}")
            time.sleep(0.2)
        self.timings["start"] = time.monotonic() - t0
        return self

    def _try_start(self, deadline: float) -> str | None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        log_start = self._log.tell()
        proc = _spawn(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            **self._popen_kw(),
        )
        self._proc = proc
        pidfile = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._reap()
                return self._log_text(log_start) or f"(exited {proc.returncode}, no log)"
            if _pidfile_ready(pidfile, proc.pid):
                return None
            time.sleep(0.02)
        self.kill()
        return f"not ready after {READY_TIMEOUT_S}s:\n{self._log_text(log_start)}"

    def _log_text(self, offset: int = 0, max_lines: int = 40) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            f.seek(offset)
            return "\n".join(f.read().decode(errors="replace").splitlines()[-max_lines:])
        return ""

    def log_tail(self, max_lines: int = 40) -> str:
        """The last lines of the server log (for assertion messages)."""
        return self._log_text(0, max_lines) if self.directory is not None else ""

    def stop(self, mode: str = "fast") -> None:
        """Shut down like ``pg_ctl stop -m MODE``: fast (default) rolls back open transactions
        and disconnects clients, smart waits for them, immediate skips the checkpoint (crash
        recovery on the next start). Escalates to kill() if it takes over 30 s."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._reap()

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started: the server crashes, as on an
        OOM kill. Committed transactions survive (the next start replays the WAL)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                postmaster = psutil.Process(proc.pid)
                postmaster.suspend()  # no new backends between listing and killing
                procs = [postmaster, *postmaster.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            # Backends are not our children: wait until they are gone (a zombie left behind
            # by a PID 1 that does not reap holds no shared memory, so it counts as gone).
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for p in procs[1:]:
                while time.monotonic() < deadline and _alive(p):
                    time.sleep(0.01)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            _terminate(self._proc, timeout=1.0)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, mode: str = "fast") -> PostgresServer:
        """stop(mode) then start(): same port, same data."""
        self.stop(mode)
        return self.start()

    def close(self) -> None:
        """Stop and delete the temp dirs this object made (a given directory is left)."""
        self.stop()
        for path in self._owned:
            shutil.rmtree(path, ignore_errors=True)
        self._owned.clear()
        _servers.discard(self)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid."""
        return self._proc.pid if self._proc is not None else None

    # ----------------------------------------------------------------- clients

    def _conninfo(self, user: str | None, db: str, password: bool) -> dict[str, str]:
        if user is None or user == SUPERUSER:
            return {
                "host": str(self.socket_dir),
                "port": str(self.port),
                "user": SUPERUSER,
                "dbname": db,
            }
        info = {"host": "127.0.0.1", "port": str(self.port), "user": user, "dbname": db}
        if password:
            info["password"] = self.password(user)
        return info

    def dsn(self, user: str | None = None, db: str = "postgres", *, password: bool = True) -> str:
        """libpq keyword DSN. No user: the superuser over the unix socket (no password);
        a role from create_role: TCP 127.0.0.1 with its password (``password=False`` leaves
        it out, for a password file)."""
        info = self._conninfo(user, db, password)
        return " ".join(f"{k}={_dsn_quote(v)}" for k, v in info.items())

    def url(self, user: str | None = None, db: str = "postgres", *, password: bool = True) -> str:
        """The same as :meth:`dsn`, as a ``postgresql://`` URL."""
        info = self._conninfo(user, db, password)
        cred = quote(info["user"], safe="")
        if "password" in info:
            cred += ":" + quote(info["password"], safe="")
        if info["host"].startswith("/"):
            socket_dir = quote(info["host"], safe="/")
            return f"postgresql://{cred}@/{quote(db, safe='')}?host={socket_dir}&port={self.port}"
        return f"postgresql://{cred}@127.0.0.1:{self.port}/{quote(db, safe='')}"

    def password(self, user: str) -> str:
        """The password create_role gave ``user``."""
        try:
            return self._passwords[user]
        except KeyError:
            raise KeyError(f"no role {user!r} was created with a password here") from None

    def write_passfile(self, path: Path, user: str, db: str = "*") -> Path:
        """A libpq password file (``~/.pgpass`` format, mode 0600) with ``user``'s password."""

        def esc(s: str) -> str:
            return s.replace("\\", "\\\\").replace(":", "\\:")

        line = ":".join(esc(s) for s in ("127.0.0.1", str(self.port), db, user))
        path = Path(path)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(f"{line}:{esc(self.password(user))}\n")
        return path

    def connect(self, db: str = "postgres", **kw: Any) -> psycopg.Connection[Any]:
        """An autocommit superuser connection over the unix socket (the test's admin path)."""
        return psycopg.connect(self.dsn(None, db), autocommit=True, **kw)

    def copy_data_from(self, saved: Path) -> None:
        """Start from a copy of a saved cluster's data directory (``cp -a``: its owner and
        modes kept) instead of initdb: a bench's cluster built once is reused, never changed.
        Call before the first :meth:`start`; ``saved`` must come from a clean shutdown."""
        self._prepare(None)
        subprocess.run(["cp", "-a", str(saved), str(self.data_dir)], check=True, timeout=1800)

    def save_data_to(self, dest: Path) -> None:
        """Stop cleanly and copy the data directory to ``dest`` (for :meth:`copy_data_from`)."""
        self.stop()
        subprocess.run(["cp", "-a", str(self.data_dir), str(dest)], check=True, timeout=1800)

    def set_password(self, name: str, password: str) -> None:
        """A new password for an existing role (one from a saved cluster)."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
        self._passwords[name] = password

    def create_role(self, name: str, password: str, *, createdb: bool = False) -> None:
        """A login role whose password (SCRAM-SHA-256) is checked on TCP connections."""
        opts = sql.SQL(" CREATEDB" if createdb else "")
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}{}").format(
                    sql.Identifier(name), sql.Literal(password), opts
                )
            )
        self._passwords[name] = password

    def create_database(
        self, name: str, *, owner: str | None = None, template: str = "template0"
    ) -> str:
        """``CREATE DATABASE name TEMPLATE template`` and its URL (for ``owner`` if given).

        Cloning a small template takes tens of milliseconds, so a database per test is
        cheap. The template must have no other connection while it is cloned.
        """
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        if owner is not None:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        t0 = time.monotonic()
        with self.connect() as conn:
            conn.execute(query)
        self.timings["create_database"] = time.monotonic() - t0
        return self.url(owner, name)

    def drop_database(self, name: str) -> None:
        """Drop it, disconnecting whoever is still connected (``WITH (FORCE)``)."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _dsn_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pidfile_ready(pidfile: Path, pid: int) -> bool:
    """postmaster.pid is ours (a killed server's stale one is not) and says "ready".

    This is what ``pg_ctl -w`` waits for: line 1 is the pid, line 8 the status.
    """
    try:
        lines = pidfile.read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Can ``user`` traverse every parent of ``path``? (As root, os.access always says yes.)"""
    groups = {user.pw_gid} | set(os.getgrouplist(user.pw_name, user.pw_gid))
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True
