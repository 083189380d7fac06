"""The one rule for free text people type — reasons, names: one line of printable characters.

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
