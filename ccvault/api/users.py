"""People who may use the HTTP API: a name, a role, and a token shown once.

Only the token's SHA-256 is stored, so a copied catalog or backup gives nobody access. Tokens
are 256 random bits; comparing hashes by lookup is safe because the stored value is already a
hash of a high-entropy secret.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from ccvault.catalog.writer import CatalogWriter
from ccvault.errors import NotFound, Refused, UsageError
from ccvault.timefmt import utc_text

# The people's roles, each allowed what the ones before it are.
ROLES = ("viewer", "operator", "admin")
# An access system posting door events: that, and nothing else (no footage, no lists).
INTEGRATION = "integration"
ALL_ROLES = (*ROLES, INTEGRATION)
TOKEN_PREFIX = "ccv_"
# Names end up in audit actors ("api:<name>") and tables: no spaces, colons or control
# characters. fullmatch: `$` would let a trailing line break through.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """viewer < operator < admin: each role can do what the ones below it can; the
        integration role stands apart: it may post access events and nothing else."""
        if INTEGRATION in (role, self.role):
            return role == self.role
        return ROLES.index(self.role) >= ROLES.index(role)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(
    writer: CatalogWriter, name: str, role: str, expires_ms: int | None, actor: str, now_ms: int
) -> str:
    """Create a user — or take again the name of one revoked or expired (someone who left and
    came back) — and return the token: the only time it exists outside the caller."""
    if not NAME.fullmatch(name):
        raise UsageError(
            "NAME",
            "use 1-64 letters, digits, '.', '_', '@' or '-' (starting with a letter or digit)",
        )
    _check_role(role, "--role")
    if expires_ms is not None and expires_ms <= now_ms:
        raise UsageError("--expires", "is already past")
    token = _new_token()
    if not writer.users.add(name, role, token_hash(token), expires_ms, actor, now_ms):
        raise Refused(
            f"user {name}",
            f"exists already and is active (`user rotate {name}` gives it a new token, "
            f"`user role {name} ROLE` another role; or choose another name)",
        )
    return token


def rotate(writer: CatalogWriter, name: str, actor: str, now_ms: int) -> str:
    """A new token for an active user; the old one, and its browser sessions, end at once
    (sessions re-check the token's hash on every request)."""
    token = _new_token()
    if not writer.users.rotate(name, token_hash(token), actor, now_ms):
        raise NotFound(
            f"user {name}", "no such active user (a revoked or expired one is added again)"
        )
    return token


def set_role(writer: CatalogWriter, name: str, role: str, actor: str, now_ms: int) -> str:
    """Change an active user's role, seen at their next request; returns the role it had."""
    _check_role(role, "ROLE")
    before = writer.users.set_role(name, role, actor, now_ms)
    if before is None:
        raise NotFound(f"user {name}", "no such active user")
    return before


def revoke(writer: CatalogWriter, name: str, actor: str, now_ms: int) -> None:
    if not writer.users.revoke(name, actor, now_ms):
        raise NotFound(f"user {name}", "no such active user")


def _check_role(role: str, what: str) -> None:
    if role not in ALL_ROLES:
        raise UsageError(what, f"must be one of {', '.join(ALL_ROLES)}")


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def listing(conn: sqlite3.Connection, now_ms: int) -> list[dict]:
    out = []
    for r in conn.execute("SELECT * FROM users ORDER BY name"):
        state = (
            "revoked"
            if r["revoked_ms"] is not None
            else "expired"
            if r["expires_ms"] is not None and r["expires_ms"] <= now_ms
            else "active"
        )
        out.append(
            {
                "name": r["name"],
                "role": r["role"],
                "state": state,
                "created": utc_text(r["created_ms"]),
                "created_by": r["created_by"],
                "expires": utc_text(r["expires_ms"]) if r["expires_ms"] else None,
            }
        )
    return out


def authenticate(conn: sqlite3.Connection, token: str, now_ms: int) -> User | None:
    """The active user this token belongs to, or None."""
    return user_for_hash(conn, token_hash(token), now_ms)


def user_for_hash(conn: sqlite3.Connection, token_sha256: str, now_ms: int) -> User | None:
    """The active (not revoked, not expired) user with this token hash, or None; sessions
    keep the hash, so a revoked user's sessions end at their next request."""
    row = conn.execute(
        "SELECT name, role FROM users WHERE token_sha256 = ? AND revoked_ms IS NULL"
        " AND (expires_ms IS NULL OR expires_ms > ?)",
        (token_sha256, now_ms),
    ).fetchone()
    return User(row["name"], row["role"]) if row else None
