"""The FastAPI application: one context, the routers, the error format, no CDN."""

from __future__ import annotations

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute

from ccvault import __version__
from ccvault.api import (
    errors,
    routes_access,
    routes_admin,
    routes_exports,
    routes_footage,
    routes_holds,
    routes_live,
    routes_metrics,
    routes_web,
)
from ccvault.api.context import ApiContext
from ccvault.api.guard import RequestGuard


def create_app(ctx: ApiContext) -> FastAPI:
    # The schema is served by routes_admin behind a token, like every /api/* path.
    app = FastAPI(
        title="ccvault", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(RequestGuard, ctx=ctx)  # Host, body size, headers: before any route
    for module in (
        routes_admin,
        routes_footage,
        routes_holds,
        routes_live,
        routes_exports,
        routes_access,
        routes_metrics,
        routes_web,
    ):
        app.include_router(module.router, responses=errors.RESPONSES)
    answer_head(app)
    return app


def answer_head(app: FastAPI) -> None:
    """HEAD wherever GET is (RFC 9110 §9.3.2): FastAPI, unlike Starlette, adds none. The
    handler runs as for GET (same status, headers and audit record); uvicorn sends no body,
    and the routes that stream a file send none either (`OpenFileResponse`, the export
    download). The schema is made first, so it lists GET alone: HEAD is implied."""
    app.openapi()
    for methods in route_methods(app):
        if "GET" in methods:
            methods.add("HEAD")


def route_methods(app: FastAPI) -> list[set[str]]:
    """The method set each route matches requests by, to change in place. FastAPI ≥ 0.160
    keeps included routers whole and matches by a context it derives (and caches) per route."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    if walk is None:
        return [r.methods for r in app.routes if isinstance(r, APIRoute)]
    return [c.methods for c in walk(app.routes) if isinstance(c.original_route, APIRoute)]
