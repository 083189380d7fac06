"""Open-file descriptors: the daemon's budget, so HTTP clients can never take recording's share.

Every camera's pipes, every segment ingest opens, the catalog's connections, the motion
workers' pipes and every HTTP connection draw on one per-process limit (RLIMIT_NOFILE). When it
runs out, `open()` fails wherever it happens to be called next — most likely in ingest, which
opens files all the time. So the HTTP server takes a bounded share (`[http] max_connections`,
two descriptors each: the socket and a footage file it streams) and the start-up check below
makes sure the limit leaves `RESERVE` more for everything else.
"""

from __future__ import annotations

import contextlib
import resource

from ccvault.errors import ConfigError

# What the daemon uses besides HTTP connections: ~55 with 8 cameras recording (bench/http_flood.py
# prints it); the rest is headroom for ingest, exports, clip joins and the catalog's readers.
RESERVE = 1024
PER_CONNECTION = 2  # the socket, and the footage file a response streams from
UNLIMITED_HARD = 1 << 20  # the kernel's usual nr_open, when the hard limit is "unlimited"


def raise_soft_limit() -> int:
    """Raise the soft limit to the hard one; returns the soft limit now in force.

    The soft limit's usual 1024 exists for programs that use select(), which cannot watch
    descriptors numbered 1024 or more. ccvault never does: asyncio uses epoll and subprocess
    uses poll, so the only effect of the low soft limit would be to starve the daemon long before
    the hard limit the administrator set (`LimitNOFILE=` in the unit). Raising the soft limit up
    to the hard one needs no privilege."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else UNLIMITED_HARD
    if soft != resource.RLIM_INFINITY and soft < target:
        # On failure it stays as it is; check_budget says whether that is enough.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def budget(max_connections: int) -> int:
    """Descriptors the daemon needs with `max_connections` HTTP connections open."""
    return max_connections * PER_CONNECTION + RESERVE


def check_budget(max_connections: int) -> int:
    """ConfigError (naming http.max_connections) unless the soft limit covers the HTTP
    connections and the reserve; returns the limit."""
    limit = raise_soft_limit()
    need = budget(max_connections)
    if limit != resource.RLIM_INFINITY and limit < need:
        raise ConfigError(
            "http.max_connections",
            f"{max_connections} connections and the reserve for recording need {need} open "
            f"files, but the limit is {limit}: lower http.max_connections to at most "
            f"{max(0, (limit - RESERVE) // PER_CONNECTION)} or raise LimitNOFILE= in the unit",
        )
    return limit
