"""How a long job (purge, backup, verify, reconcile, import, export) tells whoever watches it
how far it is — without knowing who watches: the CLI draws a bar on a terminal
(`cli.output.progress_bar`), everyone else passes `SILENT`. A lower layer takes a `Progress`,
never imports the CLI.

`Periodic` is the other half: a job that runs for ever (the scrub) logs one summary event
now and then instead of a line per item.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from ccvault.host import logs


class Unit(StrEnum):
    """What a job counts, so a watcher can show it (`1.2 GiB / 3.0 GiB`, `12/40`, `37%`)."""

    BYTES = "bytes"
    ITEMS = "items"  # segments, files, places: counted one by one
    FOOTAGE_MS = "footage_ms"  # milliseconds of footage handled
    PERMILLE = "permille"  # a job that only knows the fraction done


class Progress(Protocol):
    def expect(self, amount: int, unit: Unit) -> None:
        """More work is coming: `amount` more of `unit` (a job that plans in batches says so
        batch by batch; the total grows)."""

    def advance(self, amount: int) -> None:
        """`amount` of the expected work is done."""


class Silent:
    """Nobody watches: reports go nowhere."""

    def expect(self, amount: int, unit: Unit) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


SILENT = Silent()


def fractions(progress: Progress) -> Callable[[float], None]:
    """For a job that reports the fraction done (0-1), e.g. an export: the same `Progress`."""
    progress.expect(1000, Unit.PERMILLE)
    done = 0

    def report(fraction: float) -> None:
        nonlocal done
        now = max(done, min(1000, round(fraction * 1000)))
        progress.advance(now - done)
        done = now

    return report


class Periodic:
    """Counts what an endless job did and logs it as one event (`name`) at most every
    `every_s` seconds of `monotonic()`: the scrub's `scrub.progress`, not a line a segment."""

    def __init__(self, name: str, every_s: float, monotonic: Callable[[], float]) -> None:
        self.log = logs.get_logger("ccvault.progress")
        self.name = name
        self.every_s = every_s
        self.monotonic = monotonic
        self.since = monotonic()
        self.counts: dict[str, int] = {}

    def count(self, **amounts: int) -> None:
        for key, amount in amounts.items():
            self.counts[key] = self.counts.get(key, 0) + amount
        if self.monotonic() - self.since >= self.every_s:
            self.flush()

    def flush(self, **fields: Any) -> None:
        """Log what was counted since the last event (if anything), and start again."""
        if self.counts:
            seconds = round(self.monotonic() - self.since, 1)
            self.log.info(self.name, **self.counts, seconds=seconds, **fields)
        self.counts = {}
        self.since = self.monotonic()
