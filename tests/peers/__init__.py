"""Real network peers (cameras) and real media files for end-to-end tests.

Nothing here is a mock: ``RtspServer`` is GStreamer's gst-rtsp-server in a
child process, ``HttpTsServer`` is a live MPEG-TS stream encoded by ffmpeg and
served over HTTP, and ``make_clip`` writes real H.264/H.265 files. The venv only
needs the stdlib and ``imageio_ffmpeg`` (for its bundled ffmpeg); the RTSP
server runs under the system python, which has python3-gi (see
``scripts/test`` for the Debian packages).

Every child process is registered so it is killed at interpreter exit, and the
RTSP server also exits when its stdin closes, so a test run that dies never
leaves servers behind.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "HttpTsServer",
    "PeerError",
    "RtspServer",
    "ffmpeg_exe",
    "free_port",
    "make_clip",
    "make_mpegts_clip",
]

HERE = Path(__file__).resolve().parent
RTSP_SCRIPT = HERE / "rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("CCVAULT_TEST_SYSTEM_PYTHON", "/usr/bin/python3")
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
TS_PACKET = 188


class PeerError(RuntimeError):
    """A peer failed to start; the message carries the tail of its stderr."""


# --------------------------------------------------------------------------
# process bookkeeping


# Strong references on purpose: a peer a test forgot to stop must still be
# found (and killed) at exit even after the test dropped it.
_live_procs: set[subprocess.Popen[bytes]] = set()
_live_peers: set[_Peer] = set()


def _kill_everything() -> None:
    """atexit hook: stop peers (threads, sockets) and kill any child still running."""
    for peer in list(_live_peers):
        with contextlib.suppress(Exception):  # best effort at exit
            peer.stop()
    for proc in list(_live_procs):
        _terminate(proc, timeout=1.0)


atexit.register(_kill_everything)


def running_peers() -> set[_Peer]:
    """The peers started and not stopped yet."""
    return set(_live_peers)


def _spawn(args: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Popen that is remembered so atexit can kill it; its own process group."""
    proc = subprocess.Popen(list(args), start_new_session=True, **kw)
    _live_procs.add(proc)
    return proc


def _terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps the child."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except OSError:
            pass
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
    _live_procs.discard(proc)


class _Tail:
    """Drains a child's pipe in a thread (so it never blocks) and keeps its last lines."""

    def __init__(self, stream: IO[bytes], keep: int = 40) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                self.lines.append(raw.decode(errors="replace").rstrip())
        except (OSError, ValueError):
            pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        return "\n".join(self.lines)


def _argv(words: str) -> list[str]:
    """Split a fixed option string into argv words (keeps ffmpeg command lines short)."""
    return words.split()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with the venv's imageio-ffmpeg."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


class _Peer:
    """Common start/stop/context-manager plumbing: `with Peer() as p` starts it and closes it
    (`close`: stop, and whatever else the peer made, such as its temporary directory)."""

    def start(self) -> _Peer:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------
# RTSP


class RtspServer(_Peer):
    """A live RTSP camera (gst-rtsp-server) in a child process.

    ``stop()`` kills it the way a camera disappears: clients see the TCP
    connection drop. ``start()`` again brings it back on the same port.
    Picks a free port when ``port`` is None, and keeps it across restarts.
    """

    def __init__(
        self,
        port: int | None = None,
        paths: Iterable[str] = ("/cam",),
        width: int = 320,
        height: int = 180,
        fps: int = 10,
        bitrate_kbps: int = 500,
        keyint: int | None = None,
        codec: str = "h264",
        user: str | None = None,
        password: str | None = None,
        *,
        auth_method: str = "both",
        shared: bool = True,
        pattern: str = "ball",
        file: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.paths = tuple(p if p.startswith("/") else "/" + p for p in paths)
        self.width, self.height, self.fps = width, height, fps
        self.bitrate_kbps = bitrate_kbps
        self.keyint = keyint if keyint is not None else fps
        self.codec = codec
        self.user, self.password = user, password
        self.auth_method = auth_method
        self.shared = shared
        self.pattern = pattern
        self.file = file  # an H.264 MP4 served by stream copy instead of the pattern
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _Tail | None = None

    def command(self) -> list[str]:
        """The command line that runs the server (also handy for a manual run)."""
        cmd = [SYSTEM_PYTHON, "-u", str(RTSP_SCRIPT), "--exit-on-stdin-eof"]
        cmd += ["--port", str(self.port), "--codec", self.codec]
        cmd += ["--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps)]
        cmd += ["--bitrate-kbps", str(self.bitrate_kbps), "--keyint", str(self.keyint)]
        cmd += ["--pattern", self.pattern]
        cmd += ["--shared" if self.shared else "--no-shared"]
        if self.file is not None:
            cmd += ["--file", str(self.file)]
        for p in self.paths:
            cmd += ["--path", p]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
            cmd += ["--auth-method", self.auth_method]
        return cmd

    def start(self) -> RtspServer:
        """Launch the server and wait (at most 15 s) until it listens. Idempotent."""
        if self.running:
            return self
        self.stop()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            err = self._try_start(deadline)
            if err is None:
                _live_peers.add(self)
                return self
            # The port can still be held for a moment right after a stop(): retry.
            if "cannot listen" not in err or time.monotonic() > deadline:
                raise PeerError(f"RTSP server on port {self.port} did not start:\n{err}")
            time.sleep(0.2)

    def _try_start(self, deadline: float) -> str | None:
        proc = _spawn(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._proc, self._stderr = proc, _Tail(proc.stderr)  # type: ignore[arg-type]
        ready: queue.Queue[str] = queue.Queue()

        def read_stdout() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                ready.put(raw.decode(errors="replace").strip())
            ready.put("")  # EOF

        threading.Thread(target=read_stdout, daemon=True).start()
        pending = {f"READY {self.url(p)}" for p in self.paths}
        while pending:
            try:
                line = ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = "timeout"
            if line in ("", "timeout"):
                if line == "":  # it exited: read all of its stderr before closing pipes
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(2.0)
                    self._stderr.join(2.0)
                _terminate(proc)
                self._proc = None
                return (
                    self._stderr.text()
                    or f"(no stderr; {line or 'exited'}, code {proc.returncode})"
                )
            pending.discard(line)
        return None

    def stop(self) -> None:
        """Terminate the server (SIGTERM, SIGKILL after 5 s). Safe to call twice."""
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None
        _live_peers.discard(self)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def url(self, path: str = "/cam", *, auth: bool = False) -> str:
        """``rtsp://127.0.0.1:PORT/path``; with ``auth=True`` the user:password are embedded."""
        if not path.startswith("/"):
            path = "/" + path
        cred = f"{self.user}:{self.password}@" if auth and self.user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}{path}"

    def stderr_tail(self) -> str:
        """Last lines the server wrote to stderr (for assertion messages)."""
        return self._stderr.text() if self._stderr is not None else ""


# --------------------------------------------------------------------------
# HTTP MPEG-TS


class _TsRelay:
    """Splits ffmpeg's MPEG-TS output into packets and fans it out to clients.

    Keeps the packets since the last keyframe (a "GOP cache") plus the last
    PAT/PMT, so a client that connects at any time starts with a decodable
    keyframe immediately, as many real streamers do.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: set[queue.Queue[bytes | None]] = set()
        self.gop: list[bytes] = []
        self.pat: bytes | None = None
        self.pmt: bytes | None = None
        self.pmt_pid: int | None = None
        self.got_keyframe = threading.Event()
        self.sockets: set[socket.socket] = set()

    def feed(self, packets: bytes) -> None:
        """Take whole TS packets from ffmpeg: update the caches, send to every client."""
        with self.lock:  # one lock for both, so a new client never gets a packet twice
            for i in range(0, len(packets), TS_PACKET):
                self._remember(packets[i : i + TS_PACKET])
            dead = []
            for q in self.clients:
                try:
                    q.put_nowait(packets)
                except queue.Full:  # a client that cannot keep up is dropped
                    dead.append(q)
            for q in dead:
                self.clients.discard(q)
                self._put_eof(q)

    def _remember(self, pkt: bytes) -> None:
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        if pid == 0:
            self.pat = pkt
            # PAT payload: pointer field, table header, then program loop entries.
            if pkt[1] & 0x40 and not pkt[3] & 0x20:
                off = 5 + pkt[4]
                if len(pkt) >= off + 12:
                    self.pmt_pid = ((pkt[off + 10] & 0x1F) << 8) | pkt[off + 11]
            return
        if pid == self.pmt_pid:
            self.pmt = pkt
            return
        # ffmpeg sets random_access_indicator on the first packet of a keyframe.
        if pkt[3] & 0x20 and pkt[4] > 0 and pkt[5] & 0x40:
            self.gop = []
            self.got_keyframe.set()
        if self.got_keyframe.is_set():
            self.gop.append(pkt)

    def subscribe(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue(maxsize=2000)
        with self.lock:
            if self.pat and self.pmt:
                q.put_nowait(self.pat + self.pmt + b"".join(self.gop))
            self.clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[bytes | None]) -> None:
        with self.lock:
            self.clients.discard(q)

    def close(self) -> None:
        """End every client's stream and shut its socket, so it sees the drop at once."""
        with self.lock:
            for q in self.clients:
                self._put_eof(q)
            self.clients.clear()
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    @staticmethod
    def _put_eof(q: queue.Queue[bytes | None]) -> None:
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        q.put_nowait(None)


class HttpTsServer(_Peer):
    """A live MPEG-TS-over-HTTP camera at ``http://127.0.0.1:PORT/live.ts``.

    One ffmpeg (``-re``, lavfi ``testsrc2``: moving content, libx264
    ultrafast/zerolatency, no B-frames) writes MPEG-TS to a pipe; a threaded
    stdlib HTTP server relays it to every client. The stream runs whether or
    not anyone is connected, like a camera; clients may connect late, in
    parallel, and reconnect after a drop. Each new client starts at the most
    recent keyframe. ``stop()`` closes every client connection and the
    listening socket; ``start()`` resumes on the same port.
    """

    path = "/live.ts"

    def __init__(
        self,
        port: int | None = None,
        width: int = 320,
        height: int = 180,
        fps: int = 10,
        keyint: int | None = None,
        *,
        bitrate_kbps: int = 500,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.width, self.height, self.fps = width, height, fps
        self.keyint = keyint if keyint is not None else fps
        self.bitrate_kbps = bitrate_kbps
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _Tail | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._relay: _TsRelay | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def ffmpeg_command(self) -> list[str]:
        """The encoder: live lavfi testsrc2 -> H.264 (no B-frames) -> MPEG-TS on stdout."""
        g, rate = str(self.keyint), f"{self.bitrate_kbps}k"
        return [
            ffmpeg_exe(),
            *_argv("-hide_banner -nostdin -loglevel error -re -f lavfi -i"),
            f"testsrc2=size={self.width}x{self.height}:rate={self.fps}",
            *_argv("-c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -bf 0"),
            *["-g", g, "-keyint_min", g, "-sc_threshold", "0"],
            *["-b:v", rate, "-maxrate", rate, "-bufsize", rate],
            *_argv("-f mpegts -flush_packets 1 pipe:1"),
        ]

    def start(self) -> HttpTsServer:
        """Start encoding and serving; returns once a keyframe is ready (≤ 15 s). Idempotent."""
        if self.running:
            return self
        self.stop()
        relay = _TsRelay()
        httpd = self._bind(relay)
        proc = _spawn(
            self.ffmpeg_command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._proc, self._relay, self._httpd = proc, relay, httpd
        self._stderr = _Tail(proc.stderr)  # type: ignore[arg-type]
        self._threads = [
            threading.Thread(target=self._pump, args=(proc, relay), daemon=True, name="ts-pump"),
            threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                daemon=True,
                name="ts-http",
            ),
        ]
        for t in self._threads:
            t.start()
        _live_peers.add(self)
        if not relay.got_keyframe.wait(READY_TIMEOUT_S):
            tail = self._stderr.text()
            self.stop()
            raise PeerError(f"ffmpeg produced no keyframe in {READY_TIMEOUT_S}s:\n{tail}")
        return self

    def _bind(self, relay: _TsRelay) -> ThreadingHTTPServer:
        handler = _make_handler(relay, self.path)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
                httpd.daemon_threads = True
                return httpd
            except OSError as e:  # port briefly busy right after a stop()
                if time.monotonic() > deadline:
                    raise PeerError(f"cannot listen on 127.0.0.1:{self.port}: {e}") from e
                time.sleep(0.2)

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], relay: _TsRelay) -> None:
        assert proc.stdout is not None
        buf = b""
        while True:
            try:
                chunk = proc.stdout.read1(64 * 1024)  # type: ignore[attr-defined]
            except (OSError, ValueError):
                break
            if not chunk:
                break
            buf += chunk
            n = len(buf) - len(buf) % TS_PACKET
            if n:
                relay.feed(buf[:n])
                buf = buf[n:]
        relay.close()

    def stop(self) -> None:
        """Drop all clients, close the listener and stop ffmpeg. Safe to call twice."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None
        for t in self._threads:
            t.join(2.0)
        self._threads = []
        _live_peers.discard(self)

    @property
    def client_count(self) -> int:
        """How many HTTP clients are being streamed to right now."""
        relay = self._relay
        return len(relay.clients) if relay is not None else 0

    def stderr_tail(self) -> str:
        return self._stderr.text() if self._stderr is not None else ""


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for DNS:localhost only (no IP SAN: 127.0.0.1 must fail verification)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class WebhookReceiver:
    """A real HTTP endpoint on loopback that keeps each alert POSTed to it (Alertmanager
    JSON), with its monotonic arrival time and the request's Authorization header."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str | None, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization")
                received.extend((at, auth, alert) for alert in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str, status: str, mark: int = 0) -> list[tuple[float, dict]]:
        """(arrival, alert) of that alert and status, from the mark-th alert received on."""
        return [
            (at, alert)
            for at, _, alert in self.received[mark:]
            if alert["labels"]["alertname"] == name and alert["status"] == status
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _make_handler(relay: _TsRelay, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Streams the relay to one client until it leaves or the server stops."""

        protocol_version = "HTTP/1.0"  # no Content-Length: the body ends when we close

        def do_GET(self) -> None:
            if self.path.split("?")[0] != path:
                self.send_error(404)
                return
            q = relay.subscribe()
            with relay.lock:
                relay.sockets.add(self.connection)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                while True:
                    data = q.get()
                    if data is None:
                        break
                    self.wfile.write(data)
            except OSError:  # client went away, or stop() shut the socket
                pass
            finally:
                relay.unsubscribe(q)
                with relay.lock:
                    relay.sockets.discard(self.connection)
                self.close_connection = True

        def do_HEAD(self) -> None:
            self.send_response(200 if self.path.split("?")[0] == path else 404)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --------------------------------------------------------------------------
# files


def _motion_filter(
    seconds: float, width: int, height: int, fps: int, windows: Sequence[tuple[float, float]]
) -> str:
    """lavfi graph: static SMPTE bars, plus a moving white box only inside ``windows``.

    Outside the windows every frame is identical (no motion at all), so a
    motion detector has a clear answer for every second of the clip.
    """
    base = f"smptebars=size={width}x{height}:rate={fps}:duration={seconds}"
    if not windows:
        return f"{base}[out]"
    box = max(8, min(width, height) // 5)
    enable = "+".join(f"between(t,{a},{b})" for a, b in windows)
    speed = max(width, height)  # pixels per second: crosses the frame in ~1 s
    return (
        f"{base}[bg];color=c=white:size={box}x{box}:rate={fps}[box];"
        f"[bg][box]overlay=x='mod(t*{speed},W-w)':y='(H-h)/2+(H-h)/3*sin(t*4)'"
        f":enable='{enable}':shortest=1[out]"
    )


def _encode_clip(
    path: str | os.PathLike[str],
    seconds: float,
    width: int,
    height: int,
    fps: int,
    keyint_s: float,
    codec: str,
    motion_windows: Sequence[tuple[float, float]],
    audio: bool,
    out_args: list[str],
) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    g = str(max(1, round(fps * keyint_s)))
    graph = _motion_filter(seconds, width, height, fps, list(motion_windows))
    cmd = [ffmpeg_exe(), *_argv("-hide_banner -nostdin -loglevel error -y")]
    cmd += ["-filter_complex", graph]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    cmd += ["-map", "[out]"]
    gop = ["-g", g, "-keyint_min", g, "-sc_threshold", "0"]
    if codec == "h264":
        cmd += [*_argv("-c:v libx264 -preset ultrafast -profile:v main -bf 0"), *gop]
    elif codec in ("h265", "hevc"):
        x265 = f"bframes=0:keyint={g}:min-keyint={g}:scenecut=0:log-level=error"
        cmd += [*_argv("-c:v libx265 -preset ultrafast -x265-params"), x265]
    else:
        raise ValueError(f"unknown codec {codec!r} (h264 or h265)")
    cmd += ["-pix_fmt", "yuv420p", "-t", str(seconds)]
    if audio:
        cmd += ["-map", "0:a", "-c:a", "aac", "-b:a", "32k"]
    cmd += [*out_args, str(out)]
    res = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
    )
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace")
        raise PeerError(f"ffmpeg failed ({res.returncode}): {' '.join(cmd)}\n{err}")
    return out


def make_clip(
    path: str | os.PathLike[str],
    seconds: float,
    width: int = 320,
    height: int = 180,
    fps: int = 10,
    keyint_s: float = 1.0,
    codec: str = "h264",
    motion_windows: Sequence[tuple[float, float]] = (),
    *,
    faststart: bool = True,
    audio: bool = False,
) -> Path:
    """Write a real MP4 (H.264 or H.265) of ``seconds`` and return its path.

    The picture is static SMPTE bars; during each ``(start_s, end_s)`` of
    ``motion_windows`` a white box moves across it, so ``()`` means no motion at
    all and ``((0, seconds),)`` means motion throughout. No B-frames and a
    keyframe every ``keyint_s`` seconds, so it can be cut with ``-c copy`` at
    keyframes like camera footage. ``audio=True`` adds an AAC sine track.
    """
    args = ["-f", "mp4"]
    if faststart:
        args += ["-movflags", "+faststart"]
    if codec in ("h265", "hevc"):
        args += ["-tag:v", "hvc1"]
    return _encode_clip(
        path, seconds, width, height, fps, keyint_s, codec, motion_windows, audio, args
    )


def make_mpegts_clip(
    path: str | os.PathLike[str],
    seconds: float,
    width: int = 320,
    height: int = 180,
    fps: int = 10,
    keyint_s: float = 1.0,
    codec: str = "h264",
    motion_windows: Sequence[tuple[float, float]] = (),
    *,
    audio: bool = False,
) -> Path:
    """Same as :func:`make_clip` but an MPEG-TS (.ts) file."""
    return _encode_clip(
        path, seconds, width, height, fps, keyint_s, codec, motion_windows, audio, ["-f", "mpegts"]
    )


def system_python_has_gst_rtsp() -> bool:
    """True when the system python can import gst-rtsp-server (for skip markers)."""
    if not shutil.which(SYSTEM_PYTHON) and not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = 'import gi; gi.require_version("GstRtspServer", "1.0")'
    res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False)
    return res.returncode == 0
