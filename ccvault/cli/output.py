"""Rendering for every command: JSON for machines (stdout holds only JSON), tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ccvault.host.progress import SILENT, Progress


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table; numbers right-aligned, everything else left."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and rows for i in range(len(headers))
    ]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(parts).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(label: str, as_json: bool) -> Iterator[Progress]:
    """The one progress bar of every long command, on stderr — only on a terminal and never
    with --json (stdout stays pure JSON; a pipe or a log file gets no bar). rich is loaded
    only then (`cli.bar`), so no other command pays for importing it."""
    if as_json or not stderr_is_terminal():
        yield SILENT
        return
    from ccvault.cli.bar import rich_bar

    with rich_bar(label) as bar:
        yield bar
