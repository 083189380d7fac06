"""Who may use the HTTP API: tokens, roles, browser sessions, sign-in limits, the admin routes
and the server's logs — over real HTTP on loopback (tests/api_peer.py)."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fastapi.routing
import httpx
import pytest
import structlog

from ccvault import __version__
from ccvault.api.app import create_app
from ccvault.api.auth import CSRF_HEADER, SESSION_COOKIE, UNSAFE_METHODS, operation_role
from ccvault.api.server import ApiServer
from ccvault.api.users import ROLES, revoke, token_hash
from ccvault.catalog.audit import AuditLog
from ccvault.config.model import HttpConfig
from ccvault.errors import Busy, ConfigError
from ccvault.host import logs
from ccvault.timefmt import utc_text
from tests.api_peer import Api, free_port, serve
from tests.conftest import cli_json, run_cli, write_config
from tests.peers import self_signed
from tests.retention_seed import seed

PUBLIC = {("GET", "/healthz"), ("POST", "/api/session")}
VOLATILE = {"free_bytes", "bytes_per_day", "days", "headroom_days", "forecast_days"}
VOLATILE |= {f"{k}_text" for k in ("free", *VOLATILE)} | {"summary"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])


@pytest.fixture
def api(config: Path) -> Iterator[Api]:
    with serve(config) as running:
        yield running


def api_routes(api: Api) -> list[tuple[str, str, str | None]]:
    """(method, path, least role) of every route the app has, whoever added it."""
    app = create_app(api.ctx)
    schema = app.openapi()["paths"]
    walk = getattr(fastapi.routing, "iter_route_contexts", lambda routes: routes)
    found = []
    for route in walk(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                op = schema.get(route.path, {}).get(method.lower())
                found.append((method, route.path, operation_role(op) if op else None))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def events(api: Api, action: str) -> list[dict]:
    return [r for r in AuditLog(api.ctx.config.audit_path).records() if r["action"] == action]


def sign_in(api: Api, role: str) -> tuple[httpx.Response, str, str]:
    """POST /api/session with role's token: (response, cookie value, csrf)."""
    r = api.client(None).post("/api/session", json={"token": api.tokens[role]})
    assert r.status_code == 200, r.text
    return r, r.cookies[SESSION_COOKIE], r.json()["csrf"]


def cookie_client(api: Api, sid: str, csrf: str | None = None) -> httpx.Client:
    headers = {"Cookie": f"{SESSION_COOKIE}={sid}", **({CSRF_HEADER: csrf} if csrf else {})}
    return httpx.Client(base_url=api.url, headers=headers, timeout=30)


def api_server(api: Api, **http: object) -> ApiServer:
    """The daemon's server (ApiServer) over the test's context, on a port of its own."""
    settings = HttpConfig(**{"listen": f"127.0.0.1:{free_port()}", **http})
    return ApiServer(replace(api.ctx, config=api.ctx.config.model_copy(update={"http": settings})))


def test_every_api_route_needs_credentials_and_its_role(api: Api) -> None:
    routes = api_routes(api)
    assert ("GET", "/api/audit", "admin") in routes and ("GET", "/api/status", "viewer") in routes
    anonymous = api.client(None)
    for method, path, role in routes:
        if not path.startswith("/api") or (method, path) in PUBLIC:
            continue
        r = anonymous.request(method, concrete(path))
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["code"] == "unauthenticated"
        assert role is not None or path == "/api/openapi.json", f"{method} {path}: no require()"
        if role in ("operator", "admin"):  # one role short of it is refused, with any input
            lower = ROLES[ROLES.index(role) - 1]
            r = api.client(lower).request(method, concrete(path))
            assert r.status_code == 403, (method, path, lower, r.text)
            assert r.json()["error"]["code"] == "forbidden"
    assert anonymous.get("/healthz").json() == {"ok": True, "version": __version__}
    me = api.client("operator").get("/api/me").json()
    assert me["role"] == "operator" and me["name"].startswith("operator")
    assert api.client("viewer").get("/api/alerts").json() == {"active": [], "recent": []}
    wrong = httpx.get(api.url + "/api/me", headers={"Authorization": "Basic eDp5"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


def test_a_session_cookie_works_like_a_token_and_needs_csrf_to_change_things(api: Api) -> None:
    signed, sid, csrf = sign_in(api, "admin")
    assert signed.json()["role"] == "admin"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie and "Secure" not in cookie  # no TLS configured here
    browser = cookie_client(api, sid)
    assert browser.get("/api/me").json()["role"] == "admin"
    assert browser.get("/api/audit", params={"limit": 1}).status_code == 200
    unsafe = [(m, p) for m, p, role in api_routes(api) if m in UNSAFE_METHODS and role is not None]
    assert ("DELETE", "/api/session") in unsafe
    for method, path in unsafe:  # without the header: refused before anything happens
        r = browser.request(method, concrete(path), json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", (method, path)
    bad = cookie_client(api, sid, "not-the-csrf").delete("/api/session")
    assert bad.status_code == 403 and bad.json()["error"]["field"] == CSRF_HEADER
    out = cookie_client(api, sid, csrf).delete("/api/session")
    assert out.status_code == 204 and 'ccvault_session=""' in out.headers["set-cookie"]
    assert browser.get("/api/me").status_code == 401  # the session is gone on the server
    assert [e["actor"] for e in events(api, "auth.signout")] == [f"api:{signed.json()['user']}"]
    assert len(events(api, "auth.signin")) == 1
    # A bearer request needs no CSRF header, and signing out without a session is harmless.
    assert api.client("viewer").delete("/api/session").status_code == 204


def test_bad_tokens_are_audited_then_locked_out(api: Api) -> None:
    guesses = [f"ccv_guess{i}" for i in range(10)]
    for i, guess in enumerate(guesses):
        if i % 2:
            r = httpx.get(api.url + "/api/me", headers={"Authorization": f"Bearer {guess}"})
        else:
            r = httpx.post(api.url + "/api/session", json={"token": guess})
        assert r.status_code == 401, r.text
    failed = events(api, "auth.failed")
    assert len(failed) == 10 and {e["details"]["client"] for e in failed} == {"127.0.0.1"}
    assert {e["details"]["via"] for e in failed} == {"bearer", "session"}
    assert failed[-1]["details"]["locked_out_s"] == 60
    text = api.ctx.config.audit_path.read_text()
    assert not any(g in text or token_hash(g) in text for g in guesses)
    for attempt in (
        lambda: httpx.get(api.url + "/api/me", headers={"Authorization": "Bearer ccv_more"}),
        lambda: httpx.post(api.url + "/api/session", json={"token": "x"}),
    ):
        r = attempt()
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 0 < int(r.headers["retry-after"]) <= 60
    assert len(events(api, "auth.failed")) == 10  # a locked-out client cannot flood the log
    assert api.client("admin").get("/api/me").status_code == 200  # a valid token still works


def test_revoked_and_expired_users_are_refused(api: Api) -> None:
    now = api.ctx.now_ms()
    api.ctx.writer.users.add("gone", "admin", token_hash("ccv_gone"), now - 1, "test", now - 9)
    assert api.client("viewer").get("/api/me").status_code == 200
    expired = httpx.get(api.url + "/api/me", headers={"Authorization": "Bearer ccv_gone"})
    assert expired.status_code == 401
    _, sid, _ = sign_in(api, "viewer")
    assert cookie_client(api, sid).get("/api/me").status_code == 200
    revoke(api.ctx.writer, api.client("viewer").get("/api/me").json()["name"], "test", now)
    assert api.client("viewer").get("/api/me").status_code == 401
    assert cookie_client(api, sid).get("/api/me").status_code == 401  # its session too


def test_user_commands_print_the_token_once_and_never_list_it(config: Path, api: Api) -> None:
    added = run_cli(config, "user", "add", "ann", "--role", "operator", "--expires", "+1d")
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(r"ccv_[A-Za-z0-9_-]{40,}\n", added.stdout)
    token = added.stdout.strip()
    assert httpx.get(api.url + "/api/me", headers={"Authorization": f"Bearer {token}"}).json() == {
        "name": "ann",
        "role": "operator",
    }
    listed = run_cli(config, "user", "list", "--json")
    assert token not in listed.stdout and token_hash(token) not in listed.stdout
    ann = next(u for u in json.loads(listed.stdout) if u["name"] == "ann")
    assert set(ann) == {"name", "role", "state", "created", "created_by", "expires"}
    assert ann["state"] == "active" and ann["created_by"].startswith("cli:")
    assert run_cli(config, "user", "add", "ann", "--role", "viewer").returncode == 4
    assert run_cli(config, "user", "add", "bob", "--role", "root").returncode == 2
    assert run_cli(config, "user", "revoke", "nobody").returncode == 3
    assert cli_json(config, "audit", "list")[-1]["action"] == "user.add"  # via the writer


def test_audit_pages_filter_and_reading_it_is_audited(api: Api) -> None:
    t0 = 1_900_000_000_000
    for i in range(6):
        actor, action = ("cli:alice", "test.a") if i % 2 == 0 else ("api:bob", "test.b")
        api.ctx.writer.record_event(actor, action, f"n:{i}", {"i": i}, t0 + i * 1000)
    admin = api.client("admin")
    seen, cursor, pages = [], None, 0
    while True:
        page = admin.get(
            "/api/audit", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += page["records"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["records"][-1]["seq"]
    assert [r["seq"] for r in seen] == list(range(1, len(seen) + 1))  # all of it, in order
    assert pages == (len(seen) + 1) // 2
    assert len(events(api, "audit.read")) == 1  # one query, however many pages
    assert [
        r["object"] for r in admin.get("/api/audit", params={"user": "alice"}).json()["records"]
    ] == ["n:0", "n:2", "n:4"]
    window = {"from": utc_text(t0 + 1000), "to": utc_text(t0 + 4000)}
    got = admin.get("/api/audit", params={"action": "test.b", **window}).json()
    assert [r["object"] for r in got["records"]] == ["n:1", "n:3"] and got["next_cursor"] is None
    naive = utc_text(t0 + 5000).removesuffix("Z")  # no offset: the configured zone (UTC)
    assert [
        r["object"]
        for r in admin.get("/api/audit", params={"from": naive, "action": "test.b"}).json()[
            "records"
        ]
    ] == ["n:5"]
    bad = admin.get("/api/audit", params={"from": "yesterday-ish"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "from"
    reads = events(api, "audit.read")
    assert len(reads) == 4 and reads[-1]["actor"].startswith("api:admin")
    assert (
        reads[2]["details"]["action"] == "test.b" and reads[2]["details"]["from"] == window["from"]
    )


def test_status_is_the_cli_status(config: Path, tmp_path: Path) -> None:
    seed(
        config,
        [{"camera": "door", "start_ms": int(time.time() * 1000) - 600_000}],
        tmp_path / "cache",
    )

    def steady(value: object) -> object:  # free space and rates move with the clock and disk
        if isinstance(value, dict):
            return {k: "~" if k in VOLATILE else steady(v) for k, v in value.items()}
        return [steady(v) for v in value] if isinstance(value, list) else value

    with serve(config) as api:
        http = api.client("viewer").get("/api/status").json()
        cli = cli_json(config, "status")
        for volume in cli["volumes"]:  # the API never names a server path
            assert volume.pop("path")
        assert steady(http) == steady(cli)
    assert http["cameras"][0]["segments_24h"] == 1 and http["daemon"] == {"running": False}


def test_docs_page_lists_every_operation_without_scripts(api: Api) -> None:
    r = api.client("viewer").get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    page = r.text
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    schema = api.client("viewer").get("/api/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            assert f"<span class='m'>{method.upper()}</span> {path}</h2>" in page
            role = operation_role(op)
            assert f"role: {role}" in page if role else "role: none (public)" in page
    assert "role: admin" in page and "<td>limit</td><td>query</td>" in page
    assert "<td>token</td><td>body</td><td>string</td><td>yes</td>" in page


def test_server_logs_requests_without_tokens_or_cookies(api: Api) -> None:
    server = api_server(api)
    raw: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: raw.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("uvicorn.access").addHandler(handler)
    saved, out = structlog.get_config(), io.StringIO()
    logs.configure(out, logging.INFO, json=True)
    server.start()
    try:
        url, token = server.url, api.tokens["admin"]
        signed = httpx.post(url + "/api/session", json={"token": token})
        sid, csrf = signed.cookies[SESSION_COOKIE], signed.json()["csrf"]
        assert (
            httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
        assert (
            httpx.get(
                url + "/api/audit?limit=1", headers={"Cookie": f"{SESSION_COOKIE}={sid}"}
            ).status_code
            == 200
        )
        assert (
            httpx.get(url + "/api/me", headers={"Authorization": "Bearer ccv_wrong"}).status_code
            == 401
        )
    finally:
        server.stop()
        logging.getLogger("uvicorn.access").removeHandler(handler)
        structlog.configure(**saved)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    requests = [e for e in lines if e["event"] == "http.request"]
    assert [(e["method"], e["path"], e["status"]) for e in requests] == [
        ("POST", "/api/session", 200),
        ("GET", "/api/me", 200),
        ("GET", "/api/audit", 200),
        ("GET", "/api/me", 401),
    ]
    assert len(raw) == 4 and "listening" in {e["event"].split(".")[-1] for e in lines}
    everything = out.getvalue() + "\n".join(raw)
    for secret in (token, sid, csrf, "ccv_wrong", token_hash(token)):
        assert secret not in everything


def test_server_refuses_a_taken_port_and_serves_tls(api: Api, tmp_path: Path) -> None:
    taken = api_server(api, listen=api.url.removeprefix("http://"))
    with pytest.raises(Busy) as err:  # exit 5, like a second daemon on the catalog
        taken.start()
    assert err.value.what == "http.listen" and "taken" in err.value.problem
    cert, key = self_signed(tmp_path, "server")
    with pytest.raises(ConfigError) as bad:
        api_server(api, tls_cert=tmp_path / "missing.pem", tls_key=key).start()
    assert bad.value.what == "http.tls_cert"
    server = api_server(api, tls_cert=cert, tls_key=key)
    server.start()
    try:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=False, timeout=30) as client:
            r = client.post("/api/session", json={"token": api.tokens["viewer"]})
            assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]
            assert client.get("/healthz").json()["ok"] is True
    finally:
        server.stop()
