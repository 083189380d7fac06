"""People of the HTTP API: added and revoked, audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccvault.catalog.writer import CatalogWriter


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
    ) -> None:
        with self._core.transaction() as conn:
            conn.execute(
                "INSERT INTO users (name, role, token_sha256, created_ms, created_by, expires_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, token_sha256, now_ms, actor, expires_ms),
            )
            self._core.audit(
                actor,
                "user.add",
                f"user:{name}",
                {"name": name, "role": role, "expires_ms": expires_ms},
                now_ms,
            )

    def revoke(self, name: str, actor: str, now_ms: int) -> bool:
        with self._core.transaction() as conn:
            cur = conn.execute(
                "UPDATE users SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
                (now_ms, name),
            )
            if cur.rowcount:
                self._core.audit(actor, "user.revoke", f"user:{name}", {"name": name}, now_ms)
            return bool(cur.rowcount)
