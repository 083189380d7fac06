"""Issue 14, item 8: API answers are never cached and never sniffed. Names, holds, searches and the
audit log went out without `Cache-Control`, so a browser or a proxy could keep them, and without
`nosniff`. Now every answer carries `X-Content-Type-Options: nosniff`, and `Cache-Control:
no-store` unless its route chose otherwise: the page's immutable scripts, `/` (revalidated, it
holds no data), footage (`private, no-store`) (`api.guard.RequestGuard`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ccvault.api.routes_web import assets
from tests.api_peer import serve
from tests.conftest import write_config
from tests.retention_seed import seed


def test_api_answers_are_never_cached_and_never_sniffed(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    (seg,) = seed(config, [{"camera": "door", "start_ms": now - 600_000}], tmp_path / "cache")
    with serve(config) as api:
        admin, nobody = api.client("admin"), api.client(None)
        answers = {
            "me": admin.get("/api/me"),
            "status": admin.get("/api/status"),
            "holds": admin.get("/api/holds"),
            "audit": admin.get("/api/audit"),
            "segments": admin.get(
                "/api/segments", params={"camera": "door", "from": "-1h", "to": "now"}
            ),
            "schema": admin.get("/api/openapi.json"),
            "docs": admin.get("/api/docs"),
            "healthz": nobody.get("/healthz"),
            "sign-in": nobody.post("/api/session", json={"token": api.tokens["viewer"]}),
            "401": nobody.get("/api/me"),
            "404": admin.get("/api/segments/999999/file"),
            "400": admin.get("/api/segments", params={"camera": "door", "from": "x", "to": "y"}),
            "405": admin.put("/api/me"),
            "413": nobody.post("/api/session", content=b"{" * 70_000),
            "unknown path": nobody.get("/api/nothing-here"),
        }
        media = admin.get(f"/api/segments/{seg.id}/file")
        page = nobody.get("/")
        script = next(n for n in assets().files if n.endswith(".js"))
        asset = nobody.get(f"/assets/{assets().digest}/{script}")
    for name, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", name
        assert answer.headers.get("cache-control") == "no-store", (name, answer.headers)
    assert media.status_code == 200 and media.headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r"private, no-store", media.headers["cache-control"])
    assert page.headers["cache-control"] == "no-cache" and page.headers["etag"]
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert {page.headers["x-content-type-options"], asset.headers["x-content-type-options"]} == {
        "nosniff"
    }
