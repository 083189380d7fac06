"""Camera states and the only transitions allowed between them (drawn in docs/design.md)."""

from __future__ import annotations

from enum import StrEnum


class CameraState(StrEnum):
    DISABLED = "disabled"  # not to be recorded (config)
    CONNECTING = "connecting"  # a recorder is (re)starting or backing off
    RECORDING = "recording"  # frames are arriving and segments land in the catalog
    STALLED = "stalled"  # connected, but no segment closed in time: the recorder is restarted
    OFFLINE = "offline"  # no frames for offline_after_seconds; retries go on
    # Frames arrived, but no segment was stored for 1.5 segment lengths (a full or broken
    # spool, volume or catalog): footage is being lost. Left only when a segment is stored.
    FAILING = "failing"


S = CameraState
TRANSITIONS: dict[CameraState, frozenset[CameraState]] = {
    S.DISABLED: frozenset({S.CONNECTING}),
    S.CONNECTING: frozenset({S.RECORDING, S.STALLED, S.OFFLINE, S.FAILING, S.DISABLED}),
    S.RECORDING: frozenset({S.CONNECTING, S.STALLED, S.FAILING, S.DISABLED}),
    S.STALLED: frozenset({S.CONNECTING, S.RECORDING, S.OFFLINE, S.FAILING, S.DISABLED}),
    S.OFFLINE: frozenset({S.RECORDING, S.STALLED, S.DISABLED}),
    # A stored segment ends it (recording, or connecting when no recorder runs right now);
    # frames gone for offline_after_seconds make it a camera problem again.
    S.FAILING: frozenset({S.RECORDING, S.CONNECTING, S.OFFLINE, S.DISABLED}),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(old: CameraState, new: CameraState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new}")
