"""The one rule for free text people type — reasons, names: one line of printable characters;
and the one way sizes and spans of days are written for people (`size_text`, `days_text`).

Such text ends up in the audit log, bundle manifests, tables in a terminal and the web page.
A control character has no business there and can do harm: a NUL cuts C strings short
(SQLite's shell, journald, `grep`), a line break forges a new line in a table or a log, an
escape sequence rewrites an operator's terminal, and bidirectional overrides make text read
differently from what it holds. Refused everywhere with the field named: the CLI exits 2, the
API answers 400.
"""

from __future__ import annotations

import unicodedata

from ccvault.errors import UsageError

# Format characters that reorder what is shown (U+202A-202E, U+2066-2069): "Trojan source".
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKING = ("Cc", "Zl", "Zp")  # controls (C0, DEL, C1), line and paragraph separators


def plain_text(value: str, what: str) -> str:
    """`value` unchanged, or UsageError(`what`) naming the first offending character."""
    for i, char in enumerate(value):
        if unicodedata.category(char) in LINE_BREAKING or char in BIDI_CONTROLS:
            raise UsageError(
                what,
                f"must be one line of printable text (character {i + 1} is U+{ord(char):04X})",
            )
    return value


# Binary units only: a "GB" beside a "GiB" is 7 % apart and reads the same; every size a
# person reads (CLI, API text fields, web page, alerts) comes from `size_text`.
_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def size_text(n: int | float | None) -> str:
    """`1.5 GiB`, `812 MiB`, `17 B`; `-` for unknown. Three significant digits at most."""
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{round(n)} B"
    value = float(n)
    for unit in _SIZE_UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _SIZE_UNITS[-1]:
            break
    shown = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{shown} {unit}"


def days_text(days: float | None) -> str:
    """A span of days in words nobody misreads: `about 45 days`, `about 3 days and 6 hours`,
    `about 5 hours`, `less than an hour`; `-` for unknown (no rate to project from)."""
    if days is None:
        return "-"
    hours = round(days * 24)
    if hours < 1:
        return "less than an hour"
    if hours < 24:
        return f"about {_count(hours, 'hour')}"
    if days < 10:
        whole, rest = divmod(hours, 24)
        return f"about {_count(whole, 'day')}" + (f" and {_count(rest, 'hour')}" if rest else "")
    return f"about {_count(round(days), 'day')}"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
