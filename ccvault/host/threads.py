"""Threads named in the OS too.

`top -H`, `ps -L` and /proc/PID/task/TID/comm then say which of the daemon's threads is busy
(ingest, scrub, ffmpeg-output, live-relay, ...), where every thread would otherwise show the
process's name; bench/capacity.py splits the daemon's CPU by them. Linux keeps 15 bytes of a
thread's name; elsewhere, or without prctl, the Python name is all there is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable

PR_SET_NAME = 15
OS_NAME_BYTES = 15


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def name_this_thread(name: str) -> None:
    """Give the calling thread `name` in the OS (its first 15 bytes)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_NAME, name.encode()[:OS_NAME_BYTES], 0, 0, 0)


class Thread(threading.Thread):
    """A thread that takes its Python name in the OS as it starts."""

    def run(self) -> None:
        name_this_thread(self.name)
        super().run()
