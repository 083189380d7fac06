"""Issue 14, item 9: what a new administrator tripped on with users.

A person who left and came back gets their name again; a token that leaked is replaced
without deleting the person (and stops working at once, browser sessions made with it too);
a role changes in place. Every change is audited, and the API sees it at the next request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccvault.api.auth import SESSION_COOKIE
from ccvault.api.users import token_hash
from ccvault.catalog.audit import AuditLog
from tests.api_peer import Api, serve
from tests.conftest import cli_json, run_cli, wait_for, write_config

TOKEN = re.compile(r"ccv_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])


@pytest.fixture
def api(config: Path) -> Iterator[Api]:
    with serve(config) as running:
        yield running


def user(config: Path, *args: str) -> Any:
    return run_cli(config, "user", *args)


def token_of(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    assert TOKEN.fullmatch(result.stdout.strip()), "the token alone on stdout"
    return result.stdout.strip()


def me(api: Api, token: str) -> httpx.Response:
    return httpx.get(f"{api.url}/api/me", headers={"Authorization": f"Bearer {token}"})


def session(api: Api, token: str) -> httpx.Client:
    signed = httpx.post(f"{api.url}/api/session", json={"token": token})
    assert signed.status_code == 200, signed.text
    cookie = signed.cookies[SESSION_COOKIE]
    return httpx.Client(base_url=api.url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})


def audited(config: Path, action: str, name: str) -> list[dict[str, Any]]:
    log = AuditLog(config.parent / "audit.jsonl")
    return [r for r in log.records() if r["action"] == action and r["object"] == f"user:{name}"]


def test_a_revoked_or_expired_name_can_be_added_again_with_a_new_token(config, api) -> None:
    first = token_of(user(config, "add", "ann", "--role", "viewer"))
    assert user(config, "revoke", "ann").returncode == 0
    second = token_of(user(config, "add", "ann", "--role", "operator"))
    assert second != first
    assert me(api, first).status_code == 401, "the old token stays dead"
    assert me(api, second).json() == {"name": "ann", "role": "operator"}
    listed = [u for u in cli_json(config, "user", "list") if u["name"] == "ann"]
    assert [(u["role"], u["state"]) for u in listed] == [("operator", "active")]
    adds = audited(config, "user.add", "ann")
    assert [a["details"]["role"] for a in adds] == ["viewer", "operator"]
    assert adds[1]["details"]["again"] == "revoked"
    # An active name is refused, pointing at what the person probably wanted.
    taken = user(config, "add", "ann", "--role", "admin")
    assert taken.returncode == 4 and "user rotate" in taken.stderr and "user role" in taken.stderr
    # A name whose token expired comes back the same way.
    token_of(user(config, "add", "bob", "--role", "viewer", "--expires", "+2s"))
    wait_for(
        lambda: (
            next(u for u in cli_json(config, "user", "list") if u["name"] == "bob")["state"]
            == "expired"
        ),
        10,
        what="bob's token to expire",
    )
    third = token_of(user(config, "add", "bob", "--role", "viewer"))
    assert me(api, third).status_code == 200
    assert audited(config, "user.add", "bob")[-1]["details"]["again"] == "expired"


def test_rotating_a_token_ends_the_old_one_and_its_sessions_at_once(config, api) -> None:
    old = token_of(user(config, "add", "cy", "--role", "operator", "--expires", "+30d"))
    browser = session(api, old)
    assert browser.get("/api/me").status_code == 200
    new = token_of(user(config, "rotate", "cy"))
    assert new != old
    assert me(api, old).status_code == 401
    assert browser.get("/api/me").status_code == 401, "the session made with it ended too"
    assert me(api, new).json() == {"name": "cy", "role": "operator"}
    cy = next(u for u in cli_json(config, "user", "list") if u["name"] == "cy")
    assert cy["state"] == "active" and cy["expires"] is not None, "the expiry stays"
    rotations = audited(config, "user.rotate", "cy")
    assert len(rotations) == 1 and rotations[0]["actor"].startswith("cli:")
    text = str(rotations)
    assert old not in text and new not in text and token_hash(new) not in text
    assert user(config, "rotate", "nobody").returncode == 3
    assert user(config, "revoke", "cy").returncode == 0
    assert user(config, "rotate", "cy").returncode == 3, "a revoked user is added again instead"


def test_a_role_change_is_audited_and_takes_effect_at_once(config, api) -> None:
    token = token_of(user(config, "add", "dee", "--role", "admin"))
    browser = session(api, token)
    assert browser.get("/api/audit").status_code == 200
    changed = user(config, "role", "dee", "viewer")
    assert changed.returncode == 0, changed.stderr
    assert "admin → viewer" in changed.stdout
    assert me(api, token).json()["role"] == "viewer"
    assert (
        httpx.get(f"{api.url}/api/audit", headers={"Authorization": f"Bearer {token}"}).status_code
        == 403
    )
    assert browser.get("/api/audit").status_code == 403, "the session sees the new role"
    assert browser.get("/api/session").json()["role"] == "viewer"
    records = audited(config, "user.role", "dee")
    assert [(r["details"]["from"], r["details"]["to"]) for r in records] == [("admin", "viewer")]
    same = user(config, "role", "dee", "viewer")
    assert same.returncode == 0 and len(audited(config, "user.role", "dee")) == 1, "no change"
    assert user(config, "role", "dee", "root").returncode == 2
    assert user(config, "role", "nobody", "viewer").returncode == 3
