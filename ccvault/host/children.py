"""Child processes (recorders, analysis workers) must not outlive the daemon.

Linux's parent-death signal does it even when the daemon is killed outright. It fires when the
*thread* that started the child exits, so children are started from long-lived threads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1

# A fresh interpreter (no site, no environment: ~10 ms) that sets the signal, checks that its
# parent is still the one it was started by, and becomes the program (same pid).
_EXEC_WHILE_PARENT_LIVES = (
    "import ctypes, os, sys\n"
    f"ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGTERM)})\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(parent_pid: int) -> None:
    """Run in a fresh Python child (an analysis worker's initializer): SIGTERM it when its
    parent dies. A parent that died before this ran sends nothing, so the child checks that
    it still has it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)


def dying_with_this_process(argv: Sequence[str]) -> list[str]:
    """argv, run so that it gets SIGTERM when this process dies (ffmpeg then closes its
    segment cleanly), with no Python run in the forked copy of this process.

    `preexec_fn` would run Python between the fork and the exec, in a copy of this threaded
    daemon that may wait forever on a lock another thread held at the fork (the subprocess
    docs warn of it) — and Popen, inside the supervisor's loop, waits for that exec forever.
    A new interpreter holds no such lock. (util-linux's setpriv would do it without Python,
    but it sets capabilities, which the unit's system-call filter answers with SIGSYS.)"""
    helper = [sys.executable, "-I", "-S", "-c", _EXEC_WHILE_PARENT_LIVES]
    return [*helper, str(os.getpid()), *argv]
