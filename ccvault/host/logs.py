"""structlog set-up: JSON events with stable names for journald, a readable console on a TTY.

A redaction processor runs last over every event, so no camera password reaches a log line,
whatever code (or ffmpeg's relayed stderr) put it there.

structlog itself is imported when configured (~0.1 s of CPU): a command that logs only when
something goes wrong (`ccvault analyze`, run once per file) configures it `when_used`, and its
modules log through `get_logger`, which configures on the first event.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)(?P<pw>[^@\s'\"]+)(?=@)", re.IGNORECASE
)
MASK = "***"


class Redactor:
    """Masks known secrets and any password embedded in a URL."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = set()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        self.secrets |= {s for s in secrets if s and len(s) >= 3}

    def __call__(self, text: str) -> str:
        text = URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def processor(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        return {k: self._scrub(v) for k, v in event.items()}

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        return value


REDACTOR = Redactor()


class LossySink:
    """The log's stream, made unable to raise: when its reader is gone (journald restarted,
    the terminal closed), a line that cannot be written is dropped. Raising from `log.info`
    would stop whatever logged it — a signal handler, the daemon's shutdown, a recorder.
    While a progress bar stands on the terminal (`beside_progress`), lines go through it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if _BESIDE.write is not None:
            _BESIDE.write(text)
            return len(text)
        try:
            return self.stream.write(text)
        except (OSError, ValueError):  # EPIPE, EIO; ValueError: the stream was closed
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


class _Beside:
    """Set while a progress bar is shown: where log lines go, and the least level shown."""

    write: Callable[[str], None] | None = None
    level: int = logging.NOTSET


_BESIDE = _Beside()


@contextlib.contextmanager
def beside_progress(write: Callable[[str], None]) -> Iterator[None]:
    """While a bar stands for a job's progress: warnings and errors are written through
    `write` (above the bar, which stays whole); routine info events are not printed — the
    bar shows them, and the command's result sums them up."""
    _BESIDE.write, _BESIDE.level = write, logging.WARNING
    try:
        yield
    finally:
        _BESIDE.write, _BESIDE.level = None, logging.NOTSET


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO}


def _beside_bar(_logger: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    if _BESIDE.level and _LEVELS.get(name, logging.WARNING) < _BESIDE.level:
        import structlog  # loaded with logging itself (`configure`)

        raise structlog.DropEvent
    return event


_deferred: tuple[TextIO, int, bool | None] | None = None


def configure(
    stream: TextIO = sys.stderr,
    level: int = logging.INFO,
    json: bool | None = None,
    *,
    when_used: bool = False,
) -> None:
    """JSON lines when not a terminal (or when asked), console rendering on a terminal.
    when_used: at the first event logged through `get_logger`, not now."""
    global _deferred
    _deferred = (stream, level, json) if when_used else None
    if when_used:
        return
    import structlog

    as_json = (not stream.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _beside_bar,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR.processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(LossySink(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


class LazyLogger:
    """structlog's logger of that name, made at its first use (after a deferred configure)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._logger is None:
            if _deferred is not None:
                configure(*_deferred)
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attr)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)
