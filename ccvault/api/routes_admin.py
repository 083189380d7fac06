"""HTTP routes: health, status, alerts, the audit log, who am I, browser sessions, the docs page.

`/api/status` is `ccvault.views.status.build`, the very object `ccvault status --json` prints, and
`/api/audit` reads times with `timefmt.parse_time` like every command: one meaning per word.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from ccvault import __version__
from ccvault.api import params
from ccvault.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Admin,
    Viewer,
    auth_state,
    check_token,
    client_address,
    context,
    operation_role,
)
from ccvault.api.errors import unpath
from ccvault.api.users import token_hash
from ccvault.catalog.audit import AuditLog, audit_log
from ccvault.catalog.audit_ack import acknowledge
from ccvault.catalog.audit_verify import verifier
from ccvault.catalog.writes.audit import read_head
from ccvault.host.lock import daemon_running
from ccvault.timefmt import utc_text
from ccvault.views import status
from ccvault.views.models import AlertsOut

router = APIRouter()


class Health(BaseModel):
    ok: bool
    version: str


class Me(BaseModel):
    name: str
    role: str


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=512)


class SessionInfo(BaseModel):
    user: str
    role: str
    csrf: str | None = Field(
        description=f"send it back as {CSRF_HEADER} on "
        "POST/PUT/PATCH/DELETE; null for a bearer token (needs none)"
    )
    timezone: str = Field(
        description="the configured zone: the web page shows every time "
        "in it, whatever the browser's zone"
    )


class AuditPage(BaseModel):
    records: list[dict[str, Any]]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: done")


@router.get("/healthz", summary="Liveness (no authentication)")
def healthz() -> Health:
    """For load balancers and monitoring: answers while the daemon serves, reveals nothing."""
    return Health(ok=True, version=__version__)


@router.get("/api/me", summary="Who the credentials belong to")
def me(principal: Viewer) -> Me:
    """Lets the web page show the name and offer only what the role may do."""
    return Me(name=principal.name, role=principal.role)


@router.post("/api/session", summary="Sign in: trade a token for a session cookie")
def sign_in(body: SignIn, request: Request, response: Response) -> SessionInfo:
    """Browsers cannot put a token on `<video>`/`<img>` URLs, and tokens never go in URLs:
    the cookie (HttpOnly, SameSite=Strict, Secure under TLS) carries the session instead.
    Failed attempts are audited and rate-limited like bad bearer tokens."""
    ctx, sessions = context(request), auth_state(request.app).sessions
    user = check_token(request, body.token, "session")
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        sessions.drop(old)
    session = sessions.create(token_hash(body.token))
    ctx.audit(
        f"api:{user.name}", "auth.signin", f"user:{user.name}", {"client": client_address(request)}
    )
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        path="/",
        httponly=True,
        samesite="strict",
        secure=ctx.config.http.tls_cert is not None,
    )
    return SessionInfo(
        user=user.name, role=user.role, csrf=session.csrf, timezone=ctx.config.timezone
    )


@router.get("/api/session", summary="The current session: who, role, CSRF value, time zone")
def session_info(request: Request, principal: Viewer) -> SessionInfo:
    """A reloaded page still has its cookie but not the CSRF value it got at sign-in, and
    keeps nothing in storage: it asks here. A cross-site page cannot read the answer."""
    ctx = context(request)
    sid = request.cookies.get(SESSION_COOKIE)
    bearer = "authorization" in request.headers  # then the cookie was not what identified
    session = auth_state(request.app).sessions.get(sid) if sid and not bearer else None
    return SessionInfo(
        user=principal.name,
        role=principal.role,
        csrf=session.csrf if session else None,
        timezone=ctx.config.timezone,
    )


@router.delete("/api/session", status_code=204, summary="Sign out (end the session cookie)")
def sign_out(request: Request, principal: Viewer) -> Response:
    """Ends the browser session at once (a cookie copied elsewhere stops working too)."""
    ctx = context(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        auth_state(request.app).sessions.drop(sid)
        ctx.audit(
            principal.actor,
            "auth.signout",
            f"user:{principal.name}",
            {"client": client_address(request)},
        )
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=ctx.config.http.tls_cert is not None,
    )
    return response


@router.get("/api/status", summary="Cameras, volumes, retention: as `ccvault status --json`")
def api_status(request: Request, _p: Viewer) -> dict[str, Any]:
    """The object the CLI prints, from a read-only connection — less what names the server's
    disks: a volume's `path`, and any path in its `reason` (the API never sends a path, to
    any role; `ccvault status` on the host shows them)."""
    ctx = context(request)
    with ctx.reader() as conn:
        found = status.build(
            ctx.config,
            conn,
            ctx.now_ms(),
            daemon_running(ctx.config.lock_base, ctx.config.node.name),
        )
    for volume in found["volumes"]:
        del volume["path"]
        if volume["reason"]:
            volume["reason"] = unpath(volume["reason"])
    return found


@router.get(
    "/api/alerts", summary="Alerts firing now and resolved lately", response_model=AlertsOut
)
def alerts(request: Request, _p: Viewer) -> AlertsOut:
    """The same object as `ccvault alerts --json`: `active` (firing) and `recent` (resolved
    within `[alerts] history_days`), from the catalog, so it answers when the daemon is down."""
    ctx = context(request)
    with ctx.reader() as conn:
        return AlertsOut.read(conn, ctx.now_ms(), ctx.config.alerts.history_days)


@router.get("/api/audit", summary="The audit log, filtered and paged (admin)")
def audit_page(
    request: Request,
    principal: Admin,
    user: Annotated[
        str | None, Query(min_length=1, max_length=200, description="actor name (alice, cli:root)")
    ] = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=200, description="e.g. hold.add, purge")
    ] = None,
    from_: Annotated[
        str | None, Query(alias="from", max_length=100, description="time, e.g. -7d")
    ] = None,
    to: Annotated[str | None, Query(max_length=100, description="time (exclusive)")] = None,
    cursor: Annotated[
        int | None, Query(ge=0, le=2**62, description="next_cursor of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Records in file order (oldest first), `[from, to)`. Reading the log is itself audited
    (`audit.read`): once per query per session, not once per page."""
    ctx = context(request)
    # The fixed-width form records use, so bounds compare as text.
    lo = utc_text(params.when(ctx, from_, "from")) if from_ else None
    hi = utc_text(params.when(ctx, to, "to")) if to else None
    matches: list[dict[str, Any]] = []
    for record in AuditLog(ctx.config.audit_path).records():
        if (
            (cursor is not None and record["seq"] <= cursor)
            or (action is not None and record["action"] != action)
            or (
                user is not None
                and user not in (record["actor"], record["actor"].partition(":")[2])
            )
            or (lo is not None and record["time"] < lo)
            or (hi is not None and record["time"] >= hi)
        ):
            continue
        matches.append(record)
        if len(matches) > limit:
            break
    page = matches[:limit]
    query = {"user": user, "action": action, "from": lo, "to": hi}
    # A new query is a new look; its further pages are not.
    if ctx.record_due(principal.session, f"audit:{sorted(query.items())}", cursor is None):
        ctx.audit(principal.actor, "audit.read", "audit", {**query, "records": len(page)})
    return AuditPage(records=page, next_cursor=page[-1]["seq"] if len(matches) > limit else None)


class Acknowledge(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, description="why the break is accepted (audit log)"
    )


@router.get("/api/audit/verify", summary="The audit chain checked, as `audit verify --json`")
def audit_verify(request: Request, _p: Admin) -> dict[str, Any]:
    """The files, the catalog's head and the signed checkpoints compared: `ok`, and each
    problem (`kind`, `seq`, where, what, who acknowledged it). Reads the whole log."""
    ctx = context(request)
    with ctx.reader() as conn:
        node = ctx.config.node.name  # this node's file, against this node's head
        return verifier(audit_log(ctx.config), lambda: read_head(conn, node)).check().as_json()


@router.post(
    "/api/audit/acknowledge", summary="Accept the audit chain's open problems as known (admin)"
)
def audit_acknowledge(request: Request, principal: Admin, body: Acknowledge) -> dict[str, Any]:
    """An audited record signed at once: the problems stay listed (acknowledged) and the
    `audit_chain_broken` alert resolves once the chain verifies from there on. 409 when
    there is nothing to acknowledge."""
    ctx = context(request)
    log = ctx.writer.audit_log or audit_log(ctx.config)
    done = acknowledge(
        ctx.writer,
        verifier(log, ctx.writer.audit_chain.head),
        body.reason,
        principal.actor,
        ctx.now_ms(),
    )
    return done.as_json()


@router.get("/api/openapi.json", include_in_schema=False)
def openapi(request: Request, _p: Viewer) -> dict[str, Any]:
    """The schema, for signed-in clients only (every /api/* path needs credentials)."""
    return request.app.openapi()


@router.get("/api/docs", summary="This API, as a page", response_class=HTMLResponse)
def docs(request: Request, _p: Viewer) -> HTMLResponse:
    """Rendered here from the OpenAPI schema: no JavaScript, nothing fetched from anywhere."""
    return HTMLResponse(
        docs_html(request.app),
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def docs_html(app: FastAPI) -> str:
    """Each path and method: summary, the role it needs, parameters, body, description."""
    schema = app.openapi()
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(schema['info']['title'])}"
        f" API</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(schema['info']['title'])} API {e(schema['info']['version'])}</h1>",
        "<p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (a token from"
        " <code>ccvault user add</code>), or sign in with <code>POST /api/session</code>;"
        f" a session's state-changing requests need the <code>{CSRF_HEADER}</code> header."
        ' Errors: <code>{"error": {"code", "message", "field"}}</code>.'
        " Roles: viewer &lt; operator &lt; admin.</p>",
    ]
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            role = operation_role(op)
            parts.append(
                f"<section><h2><span class='m'>{e(method.upper())}</span> {e(path)}</h2>"
                f"<p><b>{e(op.get('summary', ''))}</b> — role: "
                f"{e(role) if role else 'none (public)'}</p>"
            )
            rows = [
                (
                    p["name"],
                    p["in"],
                    p.get("schema", {}),
                    p.get("required", False),
                    p.get("description", ""),
                )
                for p in op.get("parameters", [])
            ]
            for content in op.get("requestBody", {}).get("content", {}).values():
                body = _resolve(schema, content.get("schema", {}))
                rows += [
                    (
                        name,
                        "body",
                        prop,
                        name in body.get("required", ()),
                        prop.get("description", ""),
                    )
                    for name, prop in body.get("properties", {}).items()
                ]
            if rows:
                parts.append(
                    "<table><tr><th>parameter</th><th>in</th><th>type</th>"
                    "<th>required</th><th>description</th></tr>"
                )
                parts += [
                    f"<tr><td>{e(name)}</td><td>{e(where)}</td><td>{e(_type(kind))}</td>"
                    f"<td>{'yes' if required else 'no'}</td><td>{e(text)}</td></tr>"
                    for name, where, kind, required, text in rows
                ]
                parts.append("</table>")
            if op.get("description"):
                parts.append(f"<pre>{e(op['description'])}</pre>")
            parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return root.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return schema


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


_CSS = (
    "body{font:15px/1.4 sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "section{border-top:1px solid #ccc;margin-top:1em}h2{font-size:1.05em;font-family:"
    "monospace}.m{display:inline-block;min-width:4.5em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
    "pre{white-space:pre-wrap;font-family:inherit;color:#444}"
)
