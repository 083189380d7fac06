"""Who is asking, and may they: bearer tokens (and browser sessions), three roles.

Handlers declare the least role they need: `principal: Principal = Depends(require("viewer"))`.
Missing or wrong credentials → 401; a role too low → 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from ccvault.api.context import ApiContext
from ccvault.api.errors import ApiError
from ccvault.users import ROLES, User, authenticate, token_hash


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    session: str  # what "once per session" counts by: a session id, or the token's hash

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def identify(request: Request) -> Principal:
    ctx = context(request)
    token = _bearer(request)
    if token is None:
        raise ApiError(401, "unauthenticated", "a bearer token or a session is required")
    with ctx.reader() as conn:
        user: User | None = authenticate(conn, token, ctx.now_ms())
    if user is None:
        raise ApiError(401, "unauthenticated", "unknown, expired or revoked token")
    return Principal(user.name, user.role, token_hash(token)[:16])


def require(role: str) -> Callable[[Request], Principal]:
    assert role in ROLES

    def dependency(request: Request) -> Principal:
        principal = identify(request)
        if not User(principal.name, principal.role).may(role):
            raise ApiError(403, "forbidden", f"needs the {role} role")
        return principal

    return dependency
