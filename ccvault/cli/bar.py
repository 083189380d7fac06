"""The progress bar drawn with rich (`output.progress_bar` decides whether to draw one).

Sizes use the one unit family (`text.size_text`); log lines print above the bar and routine
info events are left to it (`logs.beside_progress`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from ccvault.host import logs
from ccvault.host.progress import Unit
from ccvault.text import size_text
from ccvault.timefmt import duration_text


@contextmanager
def rich_bar(label: str) -> Iterator[RichBar]:
    console = Console(file=sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(), Amount(), TimeRemainingColumn())
    # stdout stays the command's own (a table, or pure JSON): never routed through the bar.
    with Progress(*columns, console=console, redirect_stdout=False) as bar:
        task = bar.add_task(label, total=None, unit=Unit.ITEMS)
        with logs.beside_progress(lambda text: console.print(Text.from_ansi(text.rstrip("\n")))):
            yield RichBar(bar, task)


class RichBar:
    """`host.progress.Progress` drawn by rich: the total grows as the job expects more."""

    def __init__(self, bar: Progress, task: int) -> None:
        self.bar = bar
        self.task = task
        self.total = 0

    def expect(self, amount: int, unit: Unit) -> None:
        self.total += amount
        self.bar.update(self.task, total=self.total, unit=unit)  # type: ignore[arg-type]

    def advance(self, amount: int) -> None:
        self.bar.advance(self.task, amount)  # type: ignore[arg-type]


class Amount(ProgressColumn):
    """How much is done, in the job's own unit."""

    def render(self, task: Task) -> Text:
        return Text(amount_text(task.completed, task.total, task.fields.get("unit", Unit.ITEMS)))


def amount_text(done: float, total: float | None, unit: Unit) -> str:
    """`1.2 GiB / 3.0 GiB`, `12/40`, `3.5m / 20.0m of footage`, `37%`."""
    if unit is Unit.BYTES:
        return f"{size_text(done)} / {size_text(total)}"
    if unit is Unit.FOOTAGE_MS:
        return f"{duration_text(round(done))} / {duration_text(round(total or 0))} of footage"
    if unit is Unit.PERMILLE:
        return f"{done / 10:.0f}%"
    return f"{done:.0f}/{total:.0f}" if total is not None else f"{done:.0f}"
