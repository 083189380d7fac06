"""Issue 14, item 8: HEAD answers wherever GET does. FastAPI (unlike Starlette) adds no HEAD
route, so `HEAD` got 405 everywhere. Now every GET route answers HEAD (`api.app.answer_head`)
with GET's status and headers and no body — and the routes that stream files read none.
Every GET route of the app is tried, whoever added it: a new route is covered without
touching this test (one with a parameter it cannot fill fails, asking for a value)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import fastapi.routing
import httpx

from ccvault.api.app import create_app
from ccvault.api.routes_web import assets
from ccvault.service.metrics import Metrics
from ccvault.timefmt import utc_text
from tests.api_peer import Api, export_jobs, serve
from tests.conftest import write_config
from tests.retention_seed import seed

VOLATILE = {"/api/status": {"content-length"}}  # free space moves between two requests
QUIET = {"/api/audit": {"action": "nothing.matches"}}  # each request adds to the log itself


def get_routes(api: Api) -> list[tuple[str, list[str]]]:
    """(path template, required query parameters) of every GET route the app has; the
    schema lists GET only (HEAD is implied)."""
    app = create_app(api.ctx)
    schema = app.openapi()["paths"]
    assert not any("head" in ops for ops in schema.values()), "HEAD operations in the schema"
    walk = getattr(fastapi.routing, "iter_route_contexts", lambda routes: routes)
    found = []
    for route in walk(app.routes):
        if "GET" in (route.methods or ()):
            op = schema.get(route.path, {}).get("get", {})
            query = [
                p["name"] for p in op.get("parameters", ()) if p["in"] == "query" and p["required"]
            ]
            found.append((route.path, query))
    return sorted(found)


def fill(path: str, query: list[str], values: dict[str, object]) -> tuple[str, dict]:
    names = re.findall(r"\{(\w+)\}", path) + query
    missing = [n for n in names if n not in values]
    assert not missing, f"GET {path}: give the test a value for {missing}"
    concrete = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)
    return concrete, {**{n: values[n] for n in query}, **QUIET.get(path, {})}


def test_head_answers_wherever_get_does_with_its_headers_and_no_body(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    footage = [{"camera": "door", "start_ms": now - 600_000 + i * 2000} for i in range(3)]
    segs = seed(config, footage, tmp_path / "cache")
    jobs, writer = export_jobs(config)
    export = jobs.export_now("door", segs[0].start_ms, segs[1].end_ms, "head test", "test", None)
    script = next(n for n in assets().files if n.endswith(".js"))
    values: dict[str, object] = {
        "camera": "door",
        "from": utc_text(segs[0].start_ms),
        "to": utc_text(segs[-1].end_ms),
        "date": utc_text(now)[:10],
        "after": "-1d",
        "before": "now",
        "at": utc_text(segs[1].start_ms + 500),
        "segment_id": segs[1].id,
        "export_id": export["id"],
        "visit_id": 1,  # no door here: HEAD answers the same 404 as GET
        "name": "door",
    }
    try:
        with serve(config, exports=jobs) as api:
            api.ctx.metrics = Metrics()
            routes = get_routes(api)
            assert len(routes) >= 20, routes
            for path, query in routes:
                if path == "/assets/{digest}/{name}":
                    url, params = f"/assets/{assets().digest}/{script}", {}
                else:
                    url, params = fill(path, query, values)
                compare(api.client("admin"), path, url, params)
    finally:
        jobs.stop()
        writer.close()


def compare(client: httpx.Client, path: str, url: str, params: dict) -> None:
    """HEAD and GET of one URL: the same status and headers (but the date); no body."""
    got = client.get(url, params=params)
    head = client.head(url, params=params)
    assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
    assert got.status_code < 500 and got.status_code != 405, (path, got.text[:300])
    assert head.content == b"", path
    skip = {"date", *VOLATILE.get(path, ())}
    want = {k: v for k, v in got.headers.items() if k not in skip}
    have = {k: v for k, v in head.headers.items() if k not in skip}
    assert have == want, (path, have, want)
