"""One-off alert events raised deep in the code (a purge, an export), heard by the daemon.

Library code cannot know whether it runs in the daemon (which notifies people) or in a CLI
command (whose caller sees the error); it calls `emit`, and the daemon's alert manager is
the listener. Without a listener an event is only what the caller already logged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    name: str  # an event name of ALERT_DEFAULTS: premature_deletion, purge_failed, …
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)


Listener = Callable[[Event], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def emit(event: Event) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)


def listen(listener: Listener) -> Callable[[], None]:
    """Register a listener; returns the function that removes it again."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            _listeners.remove(listener)

    return remove
