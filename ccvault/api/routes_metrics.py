"""`GET /metrics`: the daemon's Prometheus metrics (`ccvault.service.metrics`), outside /api/.

Signed-in users of any role may read it (Prometheus sends `Authorization: Bearer <token>`,
e.g. `authorization: {credentials_file: …}` in its scrape config); with `[http]
metrics_public = true` no credentials are needed, for scrapers on a trusted network. Scrapes
are not audited: they come every few seconds and show no footage. Not in the OpenAPI schema:
its body is Prometheus text, not the JSON contract.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ccvault.api.auth import context, identify
from ccvault.api.errors import ApiError
from ccvault.api.users import User

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ctx = context(request)
    if not ctx.config.http.metrics_public:
        principal = identify(request)  # 401 without valid credentials
        if not User(principal.name, principal.role).may("viewer"):
            raise ApiError(403, "forbidden", "needs the viewer role")
    if ctx.metrics is None:
        raise ApiError(503, "unavailable", "metrics are not collected by this process")
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)
