"""Issue 14, item 8: a guesser cannot lock valid tokens out of a shared address. Ten wrong tokens
from one address locked the address: behind an office's NAT, one person guessing signed everyone
out. Now wrong tokens are counted per address and token (a token retried) and per address (a
spray of tokens) (`auth.GuessLimits`); past either limit wrong tokens get 429, unaudited so the
log is not flooded — and a valid token is never refused, by bearer header or by sign-in."""

from __future__ import annotations

from pathlib import Path

import httpx

from ccvault.api.auth import FAILURE_LIMIT, RETRY_LIMIT
from ccvault.catalog.audit import AuditLog
from tests.api_peer import Api, serve
from tests.conftest import write_config


def bearer(api: Api, token: str) -> httpx.Response:
    return httpx.get(api.url + "/api/me", headers={"Authorization": f"Bearer {token}"})


def sign_in(api: Api, token: str) -> httpx.Response:
    return httpx.post(api.url + "/api/session", json={"token": token})


def failures(api: Api) -> int:
    records = AuditLog(api.ctx.config.audit_path).records()
    return sum(1 for r in records if r["action"] == "auth.failed")


def valid_tokens_work(api: Api) -> None:
    for role in ("viewer", "operator", "admin"):
        assert bearer(api, api.tokens[role]).status_code == 200, role
        assert sign_in(api, api.tokens[role]).status_code == 200, role


def test_a_guesser_cannot_lock_valid_tokens_out_of_a_shared_address(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    with serve(config) as api:
        # One wrong token retried (a stale token in a script): that token is locked out...
        codes = [bearer(api, "ccv_stale").status_code for _ in range(RETRY_LIMIT + 2)]
        assert codes == [401] * RETRY_LIMIT + [429] * 2, codes
        assert failures(api) == RETRY_LIMIT
        assert bearer(api, "ccv_typo").status_code == 401  # ...not the address
        valid_tokens_work(api)
        # A spray of different wrong tokens, by both doors: the address is locked out...
        sprayed = [
            (bearer if i % 2 else sign_in)(api, f"ccv_guess{i}") for i in range(3 * FAILURE_LIMIT)
        ]
        codes = [r.status_code for r in sprayed]
        first = codes.index(429)
        assert first <= FAILURE_LIMIT and set(codes[first:]) == {429}, codes
        assert 0 < int(sprayed[-1].headers["retry-after"]) <= 60
        assert failures(api) == FAILURE_LIMIT  # the lockout's record, then nothing more
        # ...for wrong tokens only: every valid token still works, by either door.
        valid_tokens_work(api)
        assert bearer(api, "ccv_more").status_code == 429 and failures(api) == FAILURE_LIMIT
