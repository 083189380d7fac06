"""Clocks are injected, so that time-dependent code can be tested without sleeping.

Wall time (UTC ms) stamps footage; monotonic time measures intervals (backoff, stall and
offline timers), so a clock step never makes a camera look stalled or healthy.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
