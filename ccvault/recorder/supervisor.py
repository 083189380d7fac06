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

from ccvault.clock import Clock
from ccvault.config import Config
from ccvault.recorder.camera import STOP_GRACE_S, CameraRecorder, StateListener
from ccvault.recorder.ffmpeg import ffmpeg_binary

log = structlog.get_logger("ccvault.supervisor")

TICK_S = 0.5
CLOCK_STEP_S = 2.0


class Supervisor:
    def __init__(
        self, config: Config, spool: Path, clock: Clock, on_state: StateListener,
        on_run_ended: Callable[[], None] = lambda: None,
    ) -> None:
        self.clock = clock
        self.recorders_spool = spool
        ffmpeg = ffmpeg_binary(config)
        self.recorders = {
            cam.name: CameraRecorder(
                cam, ffmpeg, config.recording.segment_seconds,
                config.recording.offline_after_seconds, spool, clock, on_state, on_run_ended,
            )
            for cam in config.cameras
        }
        self._stop = threading.Event()
        self._offset = self._clock_offset()
        self.heartbeat = clock.monotonic()

    def _clock_offset(self) -> float:
        return self.clock.wall_ms() / 1000 - self.clock.monotonic()

    def active_runs(self) -> set[Path]:
        return {r.active_run for r in self.recorders.values() if r.active_run is not None}

    def run(self) -> None:
        for recorder in self.recorders.values():
            recorder.announce()
        while not self._stop.wait(TICK_S):
            self._check_clock()
            for recorder in self.recorders.values():
                try:
                    recorder.tick()
                except Exception:
                    recorder.log.exception("recorder.tick_failed")
            self.heartbeat = self.clock.monotonic()
        for recorder in self.recorders.values():
            recorder.interrupt()  # all at once: each ffmpeg takes up to a second to close
        deadline = time.monotonic() + STOP_GRACE_S
        for recorder in self.recorders.values():
            recorder.stop(deadline)

    def _check_clock(self) -> None:
        offset = self._clock_offset()
        step = offset - self._offset
        self._offset = offset
        if abs(step) >= CLOCK_STEP_S:
            log.warning("clock.step", step_s=round(step, 3))
            for recorder in self.recorders.values():
                recorder.restart(f"wall clock stepped {step:+.1f} s")

    def move_spool(self, spool: Path) -> None:
        log.warning("spool.moved", spool=str(spool))
        self.recorders_spool = spool
        for recorder in self.recorders.values():
            recorder.move_spool(spool)

    def stop(self) -> None:
        """Ask the loop to end; it closes every open segment cleanly before returning."""
        self._stop.set()
