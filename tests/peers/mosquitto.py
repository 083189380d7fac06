"""A real Mosquitto MQTT broker for tests, on loopback ports, configured in a temp dir.

Debian's ``mosquitto`` package provides the broker (``/usr/sbin/mosquitto``) and
``mosquitto_passwd``; the packaged system service is never used. The broker is a child of
the test process (``tests.peers._spawn``), so it is killed at exit even if a test forgets it.

Usernames and passwords are real (a password file made by ``mosquitto_passwd``), and an
optional second listener speaks TLS with a certificate from ``tests.peers.self_signed``
(valid for DNS:localhost only, so a client must connect to "localhost" and trust that
certificate as its CA). Persistence is off: a restart forgets sessions and retained
messages, as a broker replaced by a fresh one would.

Run as root (CI), mosquitto would drop privileges to user ``mosquitto`` before reading the
password file and certificates, which then could not be read from a root-private test dir
(pytest's tmp_path). The config says ``user <whoever runs the tests>`` instead: as root the
broker stays root (it listens on 127.0.0.1 only), as anyone else the option is ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from . import PeerError, _live_peers, _Peer, _spawn, _Tail, _terminate, free_port, self_signed

__all__ = ["MosquittoBroker", "mosquitto_available"]

MOSQUITTO = os.environ.get("CCVAULT_TEST_MOSQUITTO", "/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = os.environ.get("CCVAULT_TEST_MOSQUITTO_PASSWD", "/usr/bin/mosquitto_passwd")
READY_TIMEOUT_S = 15.0

_brokers: set[MosquittoBroker] = set()


def mosquitto_available() -> bool:
    """True when the broker and mosquitto_passwd are installed (for skip markers)."""
    return all(os.access(p, os.X_OK) for p in (MOSQUITTO, MOSQUITTO_PASSWD))


@atexit.register
def _close_all() -> None:
    """Stop brokers still running and delete their temp dirs (runs before tests.peers' hook)."""
    for broker in list(_brokers):
        with contextlib.suppress(Exception):  # best effort at exit
            broker.close()


class MosquittoBroker(_Peer):
    """``mosquitto -c DIR/mosquitto.conf``: a plain listener and, with ``tls=True``, a TLS one.

    Ports are picked once (or given) and kept across restarts, so a client's configuration
    stays valid through :meth:`restart`. ``users`` maps usernames to passwords; with none and
    ``allow_anonymous=False`` nobody can connect. ``start_seconds`` is the last start's time.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool = False,
        tls: bool = False,
        tls_port: int | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.tls = tls
        self.tls_port = (tls_port if tls_port is not None else free_port()) if tls else None
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.directory: Path | None = None
        self.ca_cert: Path | None = None  # the certificate a TLS client must trust
        self.start_seconds: float | None = None
        self._owned: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _Tail | None = None

    @property
    def config_path(self) -> Path:
        if self.directory is None:
            raise PeerError("MosquittoBroker has not been started yet")
        return self.directory / "mosquitto.conf"

    def _prepare(self, directory: Path | None) -> None:
        """Write the config, password file and certificate once; restarts reuse them."""
        if self.directory is not None:
            if directory is not None and Path(directory).resolve() != self.directory:
                raise ValueError(f"this broker's files live in {self.directory}")
            return
        if directory is None:
            directory = self._owned = Path(tempfile.mkdtemp(prefix="ccvault-mqtt-"))
        self.directory = directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
        ]
        if self.users:
            passwd = directory / "passwd"
            for i, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                res = subprocess.run(
                    [MOSQUITTO_PASSWD, *create, "-b", str(passwd), user, password],
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                    timeout=30,
                    check=False,
                )
                if res.returncode != 0:
                    err = (res.stdout + res.stderr).decode(errors="replace")
                    raise PeerError(f"mosquitto_passwd failed for {user!r}: {err}")
            passwd.chmod(0o600)
            lines.append(f"password_file {passwd}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls:
            self.ca_cert, key = self_signed(directory, "mqtt-server")
            key.chmod(0o600)
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"certfile {self.ca_cert}",
                f"keyfile {key}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, directory: Path | None = None) -> MosquittoBroker:
        """Start and wait (at most 15 s) until every listener accepts connections. Idempotent.

        ``directory`` (first start only) receives the config; by default a temp dir that
        :meth:`close` deletes.
        """
        if self.running:
            return self
        self._prepare(directory)
        _brokers.add(self)  # from here on, exit cleans up even if the start fails
        t0 = time.monotonic()
        deadline = t0 + READY_TIMEOUT_S
        while True:
            err = self._try_start(deadline)
            if err is None:
                break
            # The port can still be held for a moment right after a stop(): retry.
            if "in use" not in err or time.monotonic() > deadline:
                raise PeerError(f"mosquitto on port {self.port} did not start:\n{err}")
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - t0
        _live_peers.add(self)
        return self

    def _try_start(self, deadline: float) -> str | None:
        proc = _spawn(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._proc, self._stderr = proc, _Tail(proc.stderr)  # type: ignore[arg-type]
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        while ports and time.monotonic() < deadline:
            if proc.poll() is not None:
                self._stderr.join(2.0)
                _terminate(proc)
                self._proc = None
                return self._stderr.text() or f"(exited {proc.returncode}, no stderr)"
            if _accepts(ports[0]):
                ports.pop(0)
            else:
                time.sleep(0.02)
        if ports:
            self.stop()
            return f"not listening after {READY_TIMEOUT_S}s:\n{self.stderr_tail()}"
        return None

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 5 s): clients see the connection drop. Safe to call twice."""
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None
        _live_peers.discard(self)

    def restart(self) -> MosquittoBroker:
        """stop() then start(): same ports and users, no retained messages or sessions."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and delete the temp dir this object made (a given directory is left)."""
        self.stop()
        if self._owned is not None:
            shutil.rmtree(self._owned, ignore_errors=True)
            self._owned = None
        _brokers.discard(self)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def url(self, *, tls: bool = False, user: str | None = None) -> str:
        """``mqtt://[user:password@]127.0.0.1:PORT``, or ``mqtts://...localhost:TLS_PORT``
        (the certificate names localhost only)."""
        cred = ""
        if user is not None:
            cred = f"{quote(user, safe='')}:{quote(self.users[user], safe='')}@"
        if tls:
            if self.tls_port is None:
                raise PeerError("this broker has no TLS listener (tls=True)")
            return f"mqtts://{cred}localhost:{self.tls_port}"
        return f"mqtt://{cred}127.0.0.1:{self.port}"

    def stderr_tail(self) -> str:
        """Last lines the broker logged (for assertion messages)."""
        return self._stderr.text() if self._stderr is not None else ""


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0
