"""One camera's recorder: a supervised stream-copy ffmpeg and the camera's state.

`tick()` is called by the supervisor loop twice a second; it looks whether the segment file
ffmpeg writes gained fragments (frames arriving), what ffmpeg's log said (segments closing;
read by the supervisor's one `OutputPump` thread), whether the process exited, and what the
store reported (`segment_stored`), and moves the state machine. Frames are not footage: a segment
ffmpeg finished that is not stored within `fail_after` is `failing` (`recording_failed`),
whatever refuses it. Reconnects back off 1 s doubling to 60 s with jitter, reset after a
healthy minute, and never give up. All timers use the monotonic clock.
"""

from __future__ import annotations

import collections
import fcntl
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from ccvault.config.model import CameraConfig
from ccvault.host.children import dying_with_this_process
from ccvault.host.clock import Clock
from ccvault.host.logs import REDACTOR
from ccvault.recorder.ffmpeg import MP4_AUDIO, feeder_argv, needs_feeder, recorder_argv
from ccvault.recorder.live import LiveRelay
from ccvault.recorder.pump import OutputPump
from ccvault.recorder.states import CameraState, check_transition
from ccvault.storage import mp4
from ccvault.storage.media import SUPPORTED_CODECS

log = structlog.get_logger("ccvault.recorder")

HEALTHY_RESET_S = 60.0
# A finished segment not stored within one segment length less this margin is `failing`:
# with the tick and the alert check it triggers, the alert fires within two segment lengths
# of the last segment stored. Ingest gets at least MIN_FAIL_AFTER_S (a loaded host takes over
# a second now and then), which stretches that by up to half a second for 2 s segments.
FAIL_MARGIN_S = 1.0
MIN_FAIL_AFTER_S = 2.0
STOP_GRACE_S = 10.0
STREAM_LINE = re.compile(r"Stream #0:\d+.*?: (Video|Audio): (\w+)")
OPENING = re.compile(r"Opening '(.*?(\d+)\.mp4)' for writing")
# ffmpeg could not write its output (a full or broken spool): the open segment is lost.
WRITE_FAILED = re.compile(r"Error (?:submitting a packet to the muxer|writing trailer)")
NOISY = re.compile(
    r"error|fail|invalid|refused|unauthori[sz]ed|timed? ?out|not found|denied", re.IGNORECASE
)
StateListener = Callable[[str, CameraState, int, str], None]


@dataclass
class Backoff:
    initial: float = 1.0
    cap: float = 60.0
    delay: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        value = self.delay * self.rng.uniform(0.8, 1.2)
        self.delay = min(self.cap, self.delay * 2)
        return min(self.cap, value)

    def reset(self) -> None:
        self.delay = self.initial


@dataclass
class SegmentFile:
    """The segment file a recorder writes, watched from outside. ffmpeg's own frame count
    (`-progress`, a dozen lines a second) cost the daemon more to read than the recorders to
    write: the file says it as surely. Its header (ftyp, moov) is written on opening, so frames
    were muxed once a moof follows (`mp4.holds_fragment`), and each growth after that is more
    of them (the recorders flush a fragment at least every 0.2 s)."""

    path: Path
    size: int = 0
    fragments: bool = False

    def grew(self) -> bool:
        """Frames were written since the last look."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return False
        if size == self.size:
            return False
        self.size = size
        self.fragments = self.fragments or mp4.holds_fragment(self.path)
        return self.fragments


class CameraLockBusy(Exception):
    """Another ffmpeg (an orphan of a previous daemon) still writes this camera."""


class CameraRecorder:
    def __init__(
        self,
        camera: CameraConfig,
        ffmpeg: str,
        segment_seconds: int,
        offline_after: int,
        spool: Path,
        clock: Clock,
        on_state: StateListener,
        wake_ingest: Callable[[str], None] = lambda _camera: None,
        pump: OutputPump | None = None,
        live: LiveRelay | None = None,
    ) -> None:
        self.camera = camera
        self.pump = pump or OutputPump()  # the supervisor's, shared by all its recorders
        self.live = live  # told each segment file ffmpeg opens (None: live view is off)
        self.ffmpeg = ffmpeg
        self.segment_seconds = segment_seconds
        self.offline_after = offline_after
        self.stall_after = 2 * segment_seconds + 30
        self.fail_after = max(MIN_FAIL_AFTER_S, segment_seconds - FAIL_MARGIN_S)
        self.dir = spool / camera.name
        self.clock = clock
        self.on_state = on_state
        self.wake_ingest = wake_ingest  # a segment finished or a run ended: this camera's files
        self.backoff = Backoff()
        now = clock.monotonic()
        self.state = CameraState.CONNECTING if camera.enabled else CameraState.DISABLED
        self.since_ms = clock.wall_ms()
        self.next_start = now
        self.last_frames = now  # monotonic time frames last arrived (start counts)
        self.last_footage = now  # monotonic time a segment was last stored (start counts)
        # When the first segment finished after the last one stored (None: none since). Set
        # by the output pump's thread and the tick, cleared by the ingest thread.
        self._unstored_since: float | None = None
        self._stored = 0  # segments the store reported (written by the ingest thread)
        self._stored_at = now  # monotonic time of the latest
        self._seen_stored = 0
        self.recording_since = now
        self.run_dir: Path | None = None
        self.audio_codec: str | None = None
        self.video_codec: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._interrupted: subprocess.Popen[bytes] | None = None  # the ffmpeg told to close
        self._launching = False
        self._feeder: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._file: SegmentFile | None = None  # set by the output pump's thread on opening
        self._muxed = False  # this run wrote frames (a file gained a fragment)
        self._write_failed = False  # this run's ffmpeg could not write its segment
        self._segment_mark = now
        self._restart_requested = False
        self._copying_audio = False
        self._tail: collections.deque[str] = collections.deque(maxlen=12)
        self.drops: collections.deque[float] = collections.deque(maxlen=1000)
        self.log = log.bind(camera=camera.name)

    # -- state ----------------------------------------------------------------------------

    def _transition(self, new: CameraState, reason: str) -> None:
        if new == self.state:
            return
        check_transition(self.state, new)
        old, self.state = self.state, new
        self.since_ms = self.clock.wall_ms()
        self.log.info("camera.state", old=str(old), new=str(new), reason=reason)
        self.on_state(self.camera.name, new, self.since_ms, reason)

    def announce(self, reason: str = "daemon started") -> None:
        """Publish the current state (the catalog may hold the last daemon's)."""
        self.on_state(self.camera.name, self.state, self.since_ms, reason)

    # -- the loop -------------------------------------------------------------------------

    def tick(self) -> None:
        if self.state == CameraState.DISABLED:
            return
        now = self.clock.monotonic()
        if self._proc is None:
            if now >= self.next_start:
                self._start(now)
        elif (rc := self._proc.poll()) is not None:
            self._on_exit(rc, now)
        else:
            self._watch_running(now)
        self._judge_storage(now)
        no_frames = now - self.last_frames
        if self.state in (CameraState.CONNECTING, CameraState.STALLED, CameraState.FAILING) and (
            no_frames >= self.offline_after
        ):
            self._unstored_since = None  # the camera is gone: storage is judged afresh
            self._transition(CameraState.OFFLINE, f"no frames for {no_frames:.0f} s")

    def segment_stored(self) -> None:
        """The store committed a segment of this camera (called from the ingest thread; the
        next tick acts on it)."""
        self._stored_at = self.clock.monotonic()
        self._unstored_since = None
        self._stored += 1

    def _segment_finished(self, at: float) -> None:
        """ffmpeg finished a segment (or its run ended with frames): it is due in the catalog."""
        if self._unstored_since is None:
            self._unstored_since = at

    def _judge_storage(self, now: float) -> None:
        """Frames become footage only when a segment lands in the catalog."""
        if self._stored != self._seen_stored:
            self._seen_stored = self._stored
            self.last_footage = self._stored_at
            if self.state == CameraState.FAILING:
                running = CameraState.RECORDING if self._proc else CameraState.CONNECTING
                self._transition(running, "a segment was stored")
        since = self._unstored_since
        late = since is not None and now - since >= self.fail_after
        if late and self.state != CameraState.FAILING:
            self._transition(
                CameraState.FAILING,
                f"a finished segment was not stored within {self.fail_after:g} s",
            )

    def _frames_written(self) -> bool:
        """The run's open segment file gained frames since the last look."""
        file = self._file
        grew = file is not None and file.grew()
        self._muxed = self._muxed or grew
        return grew

    def _watch_running(self, now: float) -> None:
        if self._frames_written() and self.video_codec in SUPPORTED_CODECS:
            self.last_frames = now
            if self.state not in (CameraState.RECORDING, CameraState.FAILING):
                self.recording_since = now
                self._transition(CameraState.RECORDING, "frames arriving")
        if self.state == CameraState.RECORDING and now - self.recording_since >= HEALTHY_RESET_S:
            self.backoff.reset()
        if now - self._segment_mark >= self.stall_after and self.state != CameraState.STALLED:
            if self.state != CameraState.FAILING:  # failing says more: nothing is stored
                self._transition(CameraState.STALLED, f"no segment for {self.stall_after} s")
            self.interrupt()

    def _start(self, now: float) -> None:
        try:
            self._take_lock()
        except CameraLockBusy:
            self.log.warning("recorder.locked", lock=str(self.dir / ".lock"))
            self.next_start = now + self.backoff.next()
            return
        self.run_dir = self.dir / str(self.clock.wall_ms())
        self._launching = True  # the run is active from its mkdir on: ingest leaves it be
        try:
            self._launch(now)
        finally:
            self._launching = False

    def _launch(self, now: float) -> None:
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        source = self.camera.source_url()
        REDACTOR.update([self.camera.secret() or ""])
        argv = recorder_argv(
            self.ffmpeg,
            self.camera,
            source,
            self.segment_seconds,
            self.run_dir,
            self.audio_codec,
        )
        self._copying_audio = self.camera.audio and (
            self.audio_codec is None or self.audio_codec in MP4_AUDIO
        )
        stdin: int | IO[bytes] = subprocess.DEVNULL
        if needs_feeder(self.camera):
            self._feeder = subprocess.Popen(
                dying_with_this_process(feeder_argv(self.ffmpeg, self.camera)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            stdin = self._feeder.stdout  # type: ignore[assignment]
            self.pump.add(self._feeder.stderr, self._on_feeder_line)
        assert self._lock_fd is not None
        self._proc = subprocess.Popen(
            dying_with_this_process(argv),
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Own session: a signal to the daemon's process group must not reach ffmpeg
            # too (a second signal makes it drop the open segment).
            pass_fds=(self._lock_fd,),
            start_new_session=True,
        )
        if self._feeder is not None and self._feeder.stdout is not None:
            self._feeder.stdout.close()
        self._file, self._muxed = None, False
        self._write_failed = False
        self._segment_mark = now
        self._tail.clear()
        self.pump.add(self._proc.stderr, self._on_stderr_line)
        self.log.info("recorder.started", pid=self._proc.pid, run=self.run_dir.name)

    def _on_exit(self, rc: int, now: float) -> None:
        self._reap_feeder()
        self._proc = None
        if self.live is not None:
            self.live.ended(self.camera.name)
        # Its open segment ended with it: stored soon, or lost. Frames as the files hold them
        # (a run that dies within a tick of its first frames was never seen by one), or a
        # write that failed: the segment is due whatever the ticks saw.
        if self._frames_written() or self._muxed or self._write_failed:
            self._segment_finished(now)
        self.wake_ingest(self.camera.name)
        if self._restart_requested:
            self._restart_requested = False
            self.next_start = now
            self.log.info("recorder.restarting", rc=rc)
            return
        delay = self.backoff.next()
        self.next_start = now + delay
        self.log.warning(
            "recorder.exited", rc=rc, retry_in_s=round(delay, 1), stderr=list(self._tail)
        )
        if self.state in (CameraState.RECORDING, CameraState.STALLED):
            self.drops.append(now)
            self._transition(CameraState.CONNECTING, f"recorder exited ({rc})")

    def reconnects_since(self, since: float) -> int:
        """Connections lost (a recording run that ended unasked) since a monotonic time."""
        return sum(1 for t in tuple(self.drops) if t >= since)

    def restart(self, reason: str) -> None:
        """Close the current run cleanly and start a new one at once (e.g. the clock stepped)."""
        if self._proc is not None and self._proc.poll() is None:
            self.log.info("recorder.restart", reason=reason)
            self._restart_requested = True
            self.interrupt()

    def interrupt(self) -> None:
        """SIGINT, once per process: ffmpeg closes and lists the open segment, then exits. A
        second signal would make ffmpeg abort its I/O ("Immediate exit requested"), leaving
        the segment unlisted for ingest to salvage up to its last fragment."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc is not self._interrupted:
            self._interrupted = proc
            proc.send_signal(signal.SIGINT)

    def stop(self, deadline: float) -> None:
        """Close the open segment early and wait (until the monotonic deadline) for ffmpeg to
        list it. The supervisor asks every recorder to close first (`interrupt`), so the
        waits overlap instead of adding up per camera."""
        if self._proc is not None:
            self.interrupt()
            try:
                self._proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.error("recorder.kill", reason="did not stop in time")
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._reap_feeder()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _reap_feeder(self) -> None:
        if self._feeder is not None:
            if self._feeder.poll() is None:
                self._feeder.kill()
            self._feeder.wait()
            self._feeder = None

    def _take_lock(self) -> None:
        if self._lock_fd is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CameraLockBusy(self.camera.name) from None
        self._lock_fd = fd

    @property
    def active_run(self) -> Path | None:
        return self.run_dir if self._proc is not None or self._launching else None

    def move_spool(self, spool: Path) -> None:
        """Record into another spool from the next run on (the old one is drained). The old
        spool's camera lock stays with the running ffmpeg until it exits."""
        self.dir = spool / self.camera.name
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.restart(f"spool moved to {spool}")

    # -- ffmpeg output (the pump's thread) ------------------------------------------------

    def _on_stderr_line(self, line: str) -> None:
        if opened := OPENING.search(line):
            self._file = SegmentFile(Path(opened.group(1)))
            if self.live is not None:
                self.live.opened(self.camera.name, self._file.path)
            if int(opened.group(2)) > 0:  # a cut: the last file held frames
                self._muxed = True
                self._segment_mark = self.clock.monotonic()
                self._segment_finished(self._segment_mark)
                self.wake_ingest(self.camera.name)  # the previous segment is finished and listed
            return
        if WRITE_FAILED.search(line):
            self._write_failed = True
        if stream := STREAM_LINE.search(line):
            self._on_codec(stream.group(1), stream.group(2))
        text = REDACTOR(line)
        self._tail.append(text)
        if NOISY.search(line):
            self.log.warning("recorder.ffmpeg", line=text)

    def _on_feeder_line(self, line: str) -> None:
        self.log.warning("recorder.source", line=REDACTOR(line))

    def _on_codec(self, kind: str, codec: str) -> None:
        if kind == "Audio":
            self.audio_codec = codec
            if self._copying_audio and codec not in MP4_AUDIO and self._proc is not None:
                # Learnt before the first packet is written: start again, converting to AAC.
                self.log.info("camera.audio_converted", codec=codec, to="aac")
                self._copying_audio = False
                self._restart_requested = True
                self._proc.kill()
            return
        first_time = self.video_codec != codec
        self.video_codec = codec
        if codec not in SUPPORTED_CODECS:
            if first_time:
                self.log.error(
                    "camera.unsupported_codec",
                    codec=codec,
                    detail=f"{codec.upper()} cameras are not supported; "
                    "configure the camera for H.264 or H.265",
                )
            if self._proc is not None:
                self._proc.kill()  # at once: no segment of a codec we refuse gets listed
        elif codec == "hevc" and first_time:
            self.log.warning("camera.h265", detail="stored as H.265: browsers may not play it")
