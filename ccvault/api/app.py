"""The FastAPI application: one context, the routers, the error format, no CDN."""

from __future__ import annotations

from fastapi import FastAPI

from ccvault import __version__
from ccvault.api import (
    errors,
    routes_access,
    routes_admin,
    routes_exports,
    routes_footage,
    routes_holds,
    routes_metrics,
    routes_web,
)
from ccvault.api.context import ApiContext


def create_app(ctx: ApiContext) -> FastAPI:
    # The schema is served by routes_admin behind a token, like every /api/* path.
    app = FastAPI(
        title="ccvault", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.ctx = ctx
    errors.install(app)
    for module in (
        routes_admin,
        routes_footage,
        routes_holds,
        routes_exports,
        routes_access,
        routes_metrics,
        routes_web,
    ):
        app.include_router(module.router, responses=errors.RESPONSES)
    return app
