"""Who is asking, and may they: bearer tokens and browser sessions, three roles.

Handlers declare the least role they need: `principal: Principal = Depends(require("viewer"))`.
Missing or wrong credentials → 401; a role too low → 403.

A browser cannot put a token on `<video src>` or `<img src>`, so it trades its token once for a
session cookie (`POST /api/session`, in `routes_admin`). The cookie is HttpOnly and
SameSite=Strict; a state-changing request authenticated by it must also carry the session's
CSRF value in `X-CSRF-Token`, which a cross-site page cannot read. Sessions live in memory only:
a restart signs everyone out, and nothing secret is written anywhere.

A wrong token is audited (`auth.failed`, never the token) and counted twice: for the pair of
address and token (a client retrying one bad token), and for the address (a client trying many).
Past either limit, wrong tokens from there get 429 for a while, unaudited but for the record that
locked them out. A valid token is never refused: on a shared address (an office behind NAT) one
person guessing cannot lock everyone else out. Tokens are 256 random bits, so the limits are not
what stops guessing — they keep a guesser from flooding the audit log.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPBearer

from ccvault.api.connections import client_key
from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.api.users import ALL_ROLES, User, token_hash, user_for_hash

SESSION_COOKIE = "ccvault_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_IDLE_S = 12 * 3600
FAILURE_LIMIT, FAILURE_WINDOW_S, LOCKOUT_S = 10, 60.0, 60.0
RETRY_LIMIT = 5  # one wrong token retried from one address: a stale token in a script
ANONYMOUS = "api"  # the actor of a failed sign-in: no "api:<name>", since nobody is known

# Declared for the OpenAPI schema, each operation's requirement naming the least role it needs
# (OpenAPI 3.1: "for other security scheme types, the array MAY contain a list of role names");
# the docs page and the tests read roles from there. The checking is `identify`'s.
_BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="a token from `ccvault user add`"
)
_COOKIE = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="from POST /api/session; state-changing requests also "
    f"need the {CSRF_HEADER} header it returned",
)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    session: str  # what audit records are counted by: a session handle, or the token's hash

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


class RateLimited(ApiError):
    """429 with Retry-After (the error handler sends `headers` along)."""

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(
            429,
            "rate_limited",
            f"too many wrong tokens from this address; retry in {seconds} s"
            " (a valid token works meanwhile)",
            headers={"Retry-After": str(seconds)},
        )


@dataclass
class Session:
    id: str  # the cookie value: a credential, never logged, audited or handed to handlers
    handle: str  # what handlers see as Principal.session (safe to record)
    token_sha256: str  # the user is re-checked on every request: revocation ends the session
    csrf: str
    last_seen: float


class SessionStore:
    """Browser sessions in memory, ended by sign-out or `idle_s` without a request."""

    def __init__(
        self, idle_s: float = SESSION_IDLE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_s, self.clock = idle_s, clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token_sha256: str) -> Session:
        now = self.clock()
        session = Session(
            secrets.token_urlsafe(32),
            secrets.token_hex(8),
            token_sha256,
            secrets.token_urlsafe(32),
            now,
        )
        with self._lock:
            for sid in [s.id for s in self._sessions.values() if self._idle(s, now)]:
                del self._sessions[sid]
            self._sessions[session.id] = session
        return session

    def get(self, sid: str) -> Session | None:
        now = self.clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or self._idle(session, now):
                self._sessions.pop(sid, None)
                return None
            session.last_seen = now
            return session

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def _idle(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_s


@dataclass
class FailureLimiter:
    """`limit` failures for one key within `window_s` lock the key out for `lockout_s`.

    Keys start with the peer address uvicorn reports (proxy headers are not trusted), so a
    client cannot pick a fresh address per guess."""

    limit: int = FAILURE_LIMIT
    window_s: float = FAILURE_WINDOW_S
    lockout_s: float = LOCKOUT_S
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may try again, or None when it may now."""
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return None
            left = until - self.clock()
            if left > 0:
                return left
            del self._locked[key]
            return None

    def failed(self, key: str) -> bool:
        """Count a failure; True when it locks the key out."""
        now = self.clock()
        with self._lock:
            if len(self._failures) > 10_000:  # bounded memory under a spray of keys
                self._failures = {
                    k: q for k, q in self._failures.items() if q and now - q[-1] < self.window_s
                }
                self._locked = {k: t for k, t in self._locked.items() if t > now}
            recent = self._failures.setdefault(key, deque())
            recent.append(now)
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) < self.limit:
                return False
            recent.clear()
            self._locked[key] = now + self.lockout_s
            return True


@dataclass
class GuessLimits:
    """Wrong tokens, counted per address and token (`per_token`) and per address
    (`per_address`); neither ever stands in the way of a valid token."""

    per_token: FailureLimiter = field(default_factory=lambda: FailureLimiter(RETRY_LIMIT))
    per_address: FailureLimiter = field(default_factory=FailureLimiter)

    def retry_after(self, addr: str, token_sha256: str) -> float | None:
        waits = [
            w
            for w in (
                self.per_token.retry_after(f"{addr} {token_sha256}"),
                self.per_address.retry_after(addr),
            )
            if w is not None
        ]
        return max(waits) if waits else None

    def failed(self, addr: str, token_sha256: str) -> float | None:
        """Count a wrong token; the lockout it starts (seconds), if it starts one."""
        pair = self.per_token.failed(f"{addr} {token_sha256}")
        address = self.per_address.failed(addr)
        if address:
            return self.per_address.lockout_s
        return self.per_token.lockout_s if pair else None

    def allow(self, limit: int) -> None:
        """Raise both limits (the fuzzer signs in with made-up tokens on purpose)."""
        self.per_token.limit = self.per_address.limit = limit


@dataclass
class AuthState:
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: GuessLimits = field(default_factory=GuessLimits)


_STATE_LOCK = threading.Lock()


def auth_state(app: object) -> AuthState:
    """The app's session store and limiter, created on first use (kept on `app.state`)."""
    state = app.state  # type: ignore[attr-defined]
    with _STATE_LOCK:
        if not hasattr(state, "auth"):
            state.auth = AuthState()
        return state.auth


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_token(request: Request, token: str, via: str) -> User:
    """The active user of `token`, whatever else comes from its address. A wrong one is
    audited and counted (`GuessLimits`); once locked out, 429 without a record."""
    ctx, state, addr = context(request), auth_state(request.app), client_address(request)
    hashed, source = token_hash(token), client_key(addr)  # an IPv6 client counts by its /64
    with ctx.reader() as conn:
        user = user_for_hash(conn, hashed, ctx.now_ms())
    if user is not None:
        return user
    wait = state.limiter.retry_after(source, hashed)
    if wait is not None:
        raise RateLimited(wait)
    lockout_s = state.limiter.failed(source, hashed)
    details: dict[str, object] = {"client": addr, "via": via, "path": request.url.path}
    if lockout_s is not None:
        details["locked_out_s"] = lockout_s
    ctx.audit(ANONYMOUS, "auth.failed", f"client:{addr}", details)
    raise ApiError(401, "unauthenticated", "unknown, expired or revoked token")


def identify(request: Request) -> Principal:
    token = _bearer(request)
    if token is not None:  # a bearer header cannot be forged cross-site: no CSRF check
        user = check_token(request, token, "bearer")
        return Principal(user.name, user.role, token_hash(token)[:16])
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        raise ApiError(401, "unauthenticated", "a bearer token or a session is required")
    # A stale cookie (after a restart or sign-out) is not a guess: 256 random bits cannot be
    # guessed, and counting them would lock a browser out just as it tries to sign in again.
    ctx, sessions = context(request), auth_state(request.app).sessions
    session = sessions.get(sid)
    if session is None:
        raise ApiError(401, "unauthenticated", "the session has ended; sign in again")
    with ctx.reader() as conn:
        user = user_for_hash(conn, session.token_sha256, ctx.now_ms())
    if user is None:
        sessions.drop(sid)
        raise ApiError(401, "unauthenticated", "the session's user is revoked or expired")
    if request.method in UNSAFE_METHODS and not hmac.compare_digest(
        request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()
    ):
        raise ApiError(
            403,
            "csrf",
            f"a session needs the {CSRF_HEADER} header on {request.method} requests",
            CSRF_HEADER,
        )
    return Principal(user.name, user.role, session.handle)


def require(role: str) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold `role` or a higher one."""
    assert role in ALL_ROLES

    # async: run on the event loop, not a worker thread. The token lookup is one indexed
    # read (~0.1 ms); a thread hop per request cost more than that (bench/search.py).
    async def dependency(
        request: Request,
        _scheme_bearer: object = Security(_BEARER, scopes=[role]),
        _scheme_cookie: object = Security(_COOKIE, scopes=[role]),
    ) -> Principal:
        principal = identify(request)
        if not User(principal.name, principal.role).may(role):
            raise ApiError(403, "forbidden", f"needs the {role} role")
        return principal

    return dependency


def operation_role(operation: dict[str, Any]) -> str | None:
    """The least role an OpenAPI operation needs (from its security requirements); None when
    it needs no credentials."""
    roles = [
        r
        for requirement in operation.get("security", [])
        for scopes in requirement.values()
        for r in scopes
        if r in ALL_ROLES
    ]
    return max(roles, key=ALL_ROLES.index) if roles else None


# Ready-made parameter types: `def handler(who: Viewer) -> ...`.
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Integration = Annotated[Principal, Depends(require("integration"))]
