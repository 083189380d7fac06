#!/usr/bin/python3
"""A real RTSP camera for end-to-end tests, built on GStreamer's gst-rtsp-server.

Run it with the *system* python (``/usr/bin/python3``), which has python3-gi;
the project's venv does not. Debian packages needed::

    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
    (gstreamer1.0-plugins-bad for --codec h265, which needs x265enc)

Each mount path serves a live ``videotestsrc pattern=ball`` (a moving ball, so
motion detection has something to see), encoded with x264enc (or x265enc) with
no B-frames and a fixed keyframe interval, payloaded as RTP.

Once the server is listening — and, for a shared live path, once that path is
streaming — one line ``READY rtsp://127.0.0.1:PORT/path`` is printed to stdout (one
per path, flushed). SIGTERM / SIGINT stop it cleanly
with exit code 0. With ``--exit-on-stdin-eof`` it also exits when its stdin is
closed, so a parent that dies without cleaning up never leaks a server.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "ccvault-test"
LIVE_TIMEOUT_S = 10  # from listening to every shared path streaming


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument(
        "--path",
        action="append",
        dest="paths",
        metavar="PATH",
        help="mount path, repeatable (default /cam)",
    )
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--bitrate-kbps", type=int, default=500)
    p.add_argument(
        "--keyint",
        type=int,
        default=None,
        help="keyframe interval in frames (default: fps, i.e. 1 s)",
    )
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument(
        "--pattern",
        default="ball",
        help="videotestsrc pattern (default ball: motion, but only ~110 kbit/s; snow fills "
        "the requested bitrate)",
    )
    p.add_argument(
        "--file",
        default=None,
        help="serve this H.264 MP4 file by stream copy (no encoding; played once in real time, "
        "from its start for each path's first client) instead of a live test pattern",
    )
    p.add_argument("--user", default=None, help="require RTSP basic/digest auth with this user")
    p.add_argument("--password", default=None)
    p.add_argument(
        "--auth-method",
        choices=("basic", "digest", "both"),
        default="both",
        help="auth schemes offered to clients (default both)",
    )
    p.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one pipeline per path shared by all clients (default on)",
    )
    p.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="exit when stdin is closed (parent died)"
    )
    a = p.parse_args(argv)
    a.paths = [x if x.startswith("/") else "/" + x for x in (a.paths or ["/cam"])]
    if a.keyint is None:
        a.keyint = a.fps
    if (a.user is None) != (a.password is None):
        p.error("--user and --password go together")
    return a


def launch_line(a: argparse.Namespace) -> str:
    """The gst-launch description of one path's media (the payloader must be pay0)."""
    if a.file is not None:  # stream copy: the rtsp sinks pace the file to real time
        return (
            f'( filesrc location="{a.file}" ! qtdemux ! h264parse '
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    src = (
        f"videotestsrc is-live=true pattern={a.pattern} "
        f"! video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1 ! videoconvert "
        f"! video/x-raw,format=I420"
    )
    if a.codec == "h264":
        enc = (
            f"x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={a.keyint} "
            f"bitrate={a.bitrate_kbps} pass=cbr vbv-buf-capacity=1000 "
            f"! video/x-h264,profile=baseline "
            f"! rtph264pay name=pay0 pt=96 config-interval=1"
        )
    else:
        enc = (
            f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={a.keyint} "
            f"bitrate={a.bitrate_kbps} option-string=bframes=0:scenecut=0 "
            f"! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=1"
        )
    return f"( {src} ! {enc} )"


def set_auth_methods(auth: GstRtspServer.RTSPAuth, method: str) -> None:
    """Offer basic, digest or both in the WWW-Authenticate challenge.

    RTSPAuthMethod is a bit mask in C but an enum in GObject introspection, so
    BASIC|DIGEST cannot be passed from Python: for "both" call the C function
    directly through ctypes.
    """
    if method == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    elif method == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
        capsule_ptr.restype = ctypes.c_void_p
        capsule_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
        lib = ctypes.CDLL("libgstrtspserver-1.0.so.0")
        lib.gst_rtsp_auth_set_supported_methods.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.gst_rtsp_auth_set_supported_methods(
            capsule_ptr(auth.__gpointer__, None),
            int(GstRtsp.RTSPAuthMethod.BASIC) | int(GstRtsp.RTSPAuthMethod.DIGEST),
        )


def setup_auth(
    server: GstRtspServer.RTSPServer, user: str, password: str, method: str
) -> GstRtspServer.RTSPPermissions:
    """Require auth for ``user``; return the permissions to put on each factory."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    auth.add_digest(user, password, token)
    set_auth_methods(auth, method)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role(ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role(ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    return perms


def keep_live(
    urls: list[str],
    user: str | None,
    password: str | None,
    ready: Callable[[], None],
    failed: Callable[[str], None],
) -> list[Gst.Pipeline]:
    """Play every shared path from inside the server, and call ``ready`` once each streams.

    Like a real camera, whose encoder never stops, each shared media is then already
    playing when a test's clients arrive. Without this, gst-rtsp-server 1.22 races
    concurrent first clients of one shared media: a PLAY that comes before the new
    pipeline has sent its first segment aborts the server (``gst_rtsp_media_get_rates:
    assertion failed``), and one caught mid-preparation is refused (a 455, which ffmpeg
    reports as "Operation not permitted"). Seen in two of six full test runs; six
    concurrent clients on each of four servers at once hit it 3 times in 100 tries
    before, 0 in 260 after.
    """
    waiting = set(urls)

    def streaming(url: str) -> bool:
        waiting.discard(url)
        if not waiting:
            ready()
        return GLib.SOURCE_REMOVE

    def first_buffer(url: str) -> Callable[..., Gst.PadProbeReturn]:
        def probe(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            GLib.idle_add(streaming, url)  # from a streaming thread to the main loop
            return Gst.PadProbeReturn.REMOVE

        return probe

    pipelines = []
    for url in urls:
        pipe = Gst.Pipeline.new(None)
        src = Gst.ElementFactory.make("rtspsrc")
        sink = Gst.ElementFactory.make("fakesink")
        src.set_property("location", url)
        src.set_property("protocols", GstRtsp.RTSPLowerTrans.TCP)
        if user is not None:
            src.set_property("user-id", user)
            src.set_property("user-pw", password)
        sink.set_property("sync", False)
        pipe.add(src)
        pipe.add(sink)
        src.connect("pad-added", lambda _src, pad, sink=sink: pad.link(sink.get_static_pad("sink")))
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, first_buffer(url))
        pipe.get_bus().add_signal_watch()
        pipe.get_bus().connect(
            "message::error",
            lambda _bus, msg, url=url: failed(
                f"{url} does not stream: {msg.parse_error()[0].message}"
            ),
        )
        pipe.set_state(Gst.State.PLAYING)
        pipelines.append(pipe)

    def too_slow() -> bool:
        if waiting:
            failed(f"no picture within {LIVE_TIMEOUT_S} s from {sorted(waiting)}")
        return GLib.SOURCE_REMOVE

    GLib.timeout_add_seconds(LIVE_TIMEOUT_S, too_slow)
    return pipelines


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    Gst.init(None)
    enc = "x264enc" if a.codec == "h264" else "x265enc"
    if Gst.ElementFactory.find(enc) is None:
        print(f"error: GStreamer element {enc} is not installed", file=sys.stderr, flush=True)
        return 2

    server = GstRtspServer.RTSPServer()
    server.set_address(a.address)
    server.set_service(str(a.port))
    perms = setup_auth(server, a.user, a.password, a.auth_method) if a.user is not None else None

    mounts = server.get_mount_points()
    for path in a.paths:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(a))
        factory.set_shared(a.shared)
        if perms is not None:
            factory.set_permissions(perms)
        mounts.add_factory(path, factory)

    loop = GLib.MainLoop()
    try:
        ok = server.attach(None) != 0
    except GLib.Error as e:  # some versions raise instead of returning 0
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        ok = False
    if not ok:
        print(f"error: cannot listen on {a.address}:{a.port}", file=sys.stderr, flush=True)
        return 1

    def on_signal(*_: object) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, on_signal)
    if a.exit_on_stdin_eof:

        def on_stdin(_ch: GLib.IOChannel, _cond: GLib.IOCondition) -> bool:
            try:
                data = sys.stdin.buffer.raw.read(4096)
            except OSError:
                data = b""
            if not data:
                loop.quit()
                return GLib.SOURCE_REMOVE
            return GLib.SOURCE_CONTINUE

        GLib.io_add_watch(
            GLib.IOChannel.unix_new(sys.stdin.fileno()),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            on_stdin,
        )

    port = server.get_bound_port()
    urls = [f"rtsp://127.0.0.1:{port}{path}" for path in a.paths]

    def ready() -> None:
        for url in urls:
            print(f"READY {url}", flush=True)

    problems: list[str] = []

    def failed(why: str) -> None:
        problems.append(why)
        print(f"error: {why}", file=sys.stderr, flush=True)
        loop.quit()

    # The pipelines that keep the shared paths live: held here for the server's life.
    live = keep_live(urls, a.user, a.password, ready, failed) if a.shared and not a.file else None
    if live is None:
        ready()
    loop.run()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
