"""The recorder supervisor: one loop ticking every camera's recorder, and the clock watcher.

All recorder processes are spawned from this one long-lived thread, because the parent-death
signal fires when the spawning *thread* exits. A wall-clock step (NTP, an operator) restarts
every recording run, so that the timestamps inside one run never jump: each run is anchored to
the clock as it is when it starts, and no footage is overwritten (file names never replace).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from ccvault.config.model import CameraConfig, Config
from ccvault.host.clock import Clock
from ccvault.recorder.camera import STOP_GRACE_S, CameraRecorder, StateListener
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.recorder.live import LiveRelay
from ccvault.recorder.pump import OutputPump

log = structlog.get_logger("ccvault.supervisor")

TICK_S = 0.5
CLOCK_STEP_S = 2.0


class Supervisor:
    def __init__(
        self,
        config: Config,
        spool: Path,
        clock: Clock,
        on_state: StateListener,
        wake_ingest: Callable[[str], None] = lambda _camera: None,
        live: LiveRelay | None = None,
    ) -> None:
        self.clock = clock
        self.live = live  # told each segment file the recorders open (`recorder/live.py`)
        self.recorders_spool = spool
        self.on_state, self.wake_ingest = on_state, wake_ingest
        self.config = config
        self.pump = OutputPump()  # one thread reads every recorder's ffmpeg output
        self.recorders = {cam.name: self._recorder(cam) for cam in config.cameras}
        self._stop = threading.Event()
        self._pending: Config | None = None
        self._pending_lock = threading.Lock()
        self._offset = self._clock_offset()
        self.heartbeat = clock.monotonic()

    def _clock_offset(self) -> float:
        return self.clock.wall_ms() / 1000 - self.clock.monotonic()

    def active_runs(self) -> set[Path]:
        return {r.active_run for r in self.recorders.values() if r.active_run is not None}

    def _recorder(self, cam: CameraConfig) -> CameraRecorder:
        rec = self.config.recording
        return CameraRecorder(
            cam,
            ffmpeg_binary(self.config),
            rec.segment_seconds,
            rec.offline_after_seconds,
            self.recorders_spool,
            self.clock,
            self.on_state,
            self.wake_ingest,
            self.pump,
            self.live if self.config.recording.live_view else None,
        )

    def apply(self, config: Config) -> None:
        """Take a reloaded config; the loop applies it at its next tick (recorders are spawned
        from the loop's thread only)."""
        with self._pending_lock:
            self._pending = config

    def run(self) -> None:
        for recorder in self.recorders.values():
            recorder.announce()
        while not self._stop.wait(TICK_S):
            self._apply_pending()
            self._check_clock()
            for recorder in self.recorders.values():
                try:
                    recorder.tick()
                except Exception:
                    recorder.log.exception("recorder.tick_failed")
            self.heartbeat = self.clock.monotonic()
        _stop_all(list(self.recorders.values()))

    def _apply_pending(self) -> None:
        """Recorders of unchanged cameras go on untouched; a changed camera's recorder closes
        its segment cleanly and a new one starts with the new settings at once."""
        with self._pending_lock:
            config, self._pending = self._pending, None
        if config is None:
            return
        same_recording = config.recording == self.config.recording and ffmpeg_binary(
            config
        ) == ffmpeg_binary(self.config)
        new = {c.name: c for c in config.cameras}
        ended = [
            r
            for name, r in self.recorders.items()
            if not same_recording or new.get(name) != r.camera
        ]
        _stop_all(ended)
        self.config = config
        kept = {n: r for n, r in self.recorders.items() if r not in ended and n in new}
        started = [c for c in config.cameras if c.name not in kept]
        # A new dict, not edits in place: other threads iterate over the recorders.
        self.recorders = {c.name: kept.get(c.name) or self._recorder(c) for c in config.cameras}
        for cam in started:
            self.recorders[cam.name].announce()
        log.info(
            "supervisor.reconfigured",
            stopped=[r.camera.name for r in ended],
            started=[c.name for c in started],
        )

    def _check_clock(self) -> None:
        offset = self._clock_offset()
        step = offset - self._offset
        self._offset = offset
        if abs(step) >= CLOCK_STEP_S:
            log.warning("clock.step", step_s=round(step, 3))
            for recorder in self.recorders.values():
                recorder.restart(f"wall clock stepped {step:+.1f} s")

    def segment_stored(self, camera: str) -> None:
        """A segment of camera landed in the catalog (the store's callback)."""
        recorder = self.recorders.get(camera)
        if recorder is not None:
            recorder.segment_stored()

    def announce(self) -> None:
        """Publish every camera's state again (the catalog came back after being gone)."""
        for recorder in self.recorders.values():
            recorder.announce("catalog reopened")

    def move_spool(self, spool: Path) -> None:
        log.warning("spool.moved", spool=str(spool))
        self.recorders_spool = spool
        for recorder in self.recorders.values():
            recorder.move_spool(spool)

    def stop(self) -> None:
        """Ask the loop to end; it closes every open segment cleanly before returning."""
        self._stop.set()


def _stop_all(recorders: list[CameraRecorder]) -> None:
    for recorder in recorders:
        recorder.interrupt()  # all at once: each ffmpeg takes up to a second to close
    deadline = time.monotonic() + STOP_GRACE_S
    for recorder in recorders:
        recorder.stop(deadline)
