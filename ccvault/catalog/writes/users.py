"""People of the HTTP API: added (or a name taken again), token rotated, role changed, revoked;
each change audited in its own transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter

# The row of a user who may sign in now: not revoked, not expired (`?` is now).
ACTIVE = "revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?)"


class UserWrites:
    def __init__(self, core: CatalogWriter) -> None:
        self._core = core

    def add(
        self,
        name: str,
        role: str,
        token_sha256: str,
        expires_ms: int | None,
        actor: str,
        now_ms: int,
    ) -> bool:
        """A new user; or a name whose user was revoked or has expired, taken again: its row
        gets the new token, role and expiry (what it was stays in the audit log). False when
        the name belongs to an active user."""
        with self._core.transaction() as conn:
            row = conn.execute(
                "SELECT revoked_ms, expires_ms FROM users WHERE name = ?", (name,)
            ).fetchone()
            details: dict[str, object] = {"name": name, "role": role, "expires_ms": expires_ms}
            if row is None:
                conn.execute(
                    "INSERT INTO users (name, role, token_sha256, created_ms, created_by,"
                    " expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role, token_sha256, now_ms, actor, expires_ms),
                )
            elif row["revoked_ms"] is None and (
                row["expires_ms"] is None or row["expires_ms"] > now_ms
            ):
                return False
            else:
                details["again"] = "revoked" if row["revoked_ms"] is not None else "expired"
                conn.execute(
                    "UPDATE users SET role = ?, token_sha256 = ?, created_ms = ?, created_by = ?,"
                    " expires_ms = ?, revoked_ms = NULL WHERE name = ?",
                    (role, token_sha256, now_ms, actor, expires_ms, name),
                )
            self._core.audit(actor, "user.add", f"user:{name}", details, now_ms)
            return True

    def rotate(self, name: str, token_sha256: str, actor: str, now_ms: int) -> bool:
        """An active user's new token: the old one (and every session made with it) stops
        working at the next request. False: no such active user."""
        with self._core.transaction() as conn:
            cur = conn.execute(
                f"UPDATE users SET token_sha256 = ? WHERE name = ? AND {ACTIVE}",
                (token_sha256, name, now_ms),
            )
            if cur.rowcount:
                self._core.audit(actor, "user.rotate", f"user:{name}", {"name": name}, now_ms)
            return bool(cur.rowcount)

    def set_role(self, name: str, role: str, actor: str, now_ms: int) -> str | None:
        """An active user's role (audited when it changes); the role it had, or None when
        there is no such active user."""
        with self._core.transaction() as conn:
            row = conn.execute(
                f"SELECT role FROM users WHERE name = ? AND {ACTIVE}", (name, now_ms)
            ).fetchone()
            if row is None or row["role"] == role:
                return None if row is None else row["role"]
            conn.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            self._core.audit(
                actor,
                "user.role",
                f"user:{name}",
                {"name": name, "from": row["role"], "to": role},
                now_ms,
            )
            return row["role"]

    def revoke(self, name: str, actor: str, now_ms: int) -> bool:
        with self._core.transaction() as conn:
            cur = conn.execute(
                "UPDATE users SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
                (now_ms, name),
            )
            if cur.rowcount:
                self._core.audit(actor, "user.revoke", f"user:{name}", {"name": name}, now_ms)
            return bool(cur.rowcount)
