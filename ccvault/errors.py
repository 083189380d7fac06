"""Errors that end a command, each with the exit code the CLI conventions give it.

The CLI prints `ccvault: error: <what>: <problem>` and exits with `code`; the daemon logs the
same text. Keeping the codes here means every command agrees on them.
"""

from __future__ import annotations

OK = 0
CHECK_FAILED = 1
USAGE = 2
NOT_FOUND = 3
REFUSED = 4
BUSY = 5


class CcvaultError(Exception):
    code = CHECK_FAILED

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what}: {problem}")
        self.what = what
        self.problem = problem


class UsageError(CcvaultError):
    code = USAGE


class ConfigError(CcvaultError):
    code = USAGE


class NotFound(CcvaultError):
    code = NOT_FOUND


class Refused(CcvaultError):
    code = REFUSED


class Busy(CcvaultError):
    code = BUSY


class CheckFailed(CcvaultError):
    code = CHECK_FAILED


def reason(exc: BaseException) -> str:
    """What went wrong, in words: an OS or FFmpeg error's own sentence ("Permission denied",
    "Invalid data found when processing input") without its number (`[Errno 1094995529]` is
    FFmpeg's AVERROR_INVALIDDATA, meaningless to people) or the path the caller names already.
    Every message that passes an exception on to people goes through here."""
    words = getattr(exc, "strerror", None)
    if isinstance(words, str) and words:
        return words
    return str(exc).strip() or type(exc).__name__
