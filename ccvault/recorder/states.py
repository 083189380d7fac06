"""Camera states and the only transitions allowed between them (drawn in docs/design.md)."""

from __future__ import annotations

from enum import StrEnum


class CameraState(StrEnum):
    DISABLED = "disabled"  # not to be recorded (config)
    CONNECTING = "connecting"  # a recorder is (re)starting or backing off
    RECORDING = "recording"  # frames are arriving
    STALLED = "stalled"  # connected, but no segment closed in time: the recorder is restarted
    OFFLINE = "offline"  # no footage for offline_after_seconds; retries go on


S = CameraState
TRANSITIONS: dict[CameraState, frozenset[CameraState]] = {
    S.DISABLED: frozenset({S.CONNECTING}),
    S.CONNECTING: frozenset({S.RECORDING, S.STALLED, S.OFFLINE, S.DISABLED}),
    S.RECORDING: frozenset({S.CONNECTING, S.STALLED, S.DISABLED}),
    S.STALLED: frozenset({S.CONNECTING, S.RECORDING, S.OFFLINE, S.DISABLED}),
    S.OFFLINE: frozenset({S.RECORDING, S.STALLED, S.DISABLED}),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(old: CameraState, new: CameraState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new}")
