"""Child processes (recorders, analysis workers) must not outlive the daemon.

Linux's parent-death signal does it even when the daemon is killed outright. It fires when the
*thread* that started the child exits, so children are started from long-lived threads.
"""

from __future__ import annotations

import ctypes
import os
import signal

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Run in the child: SIGTERM it when its parent dies (ffmpeg then closes its segment
    cleanly; a worker simply ends). A parent that died before this ran sends nothing, so the
    child checks that it still has it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)
