"""The web page for security staff: `/` and its scripts and stylesheet, all from the package.

The page is plain JavaScript modules and one stylesheet in `ccvault/web/` — no CDN, no build
step, system fonts — read once. They are served under `/assets/<digest>/`, the digest taken over
every file, so a browser may keep them for a year (`immutable`) and an upgrade changes every URL
at once; `/` itself is revalidated on each load, so it always names the current digest. The
page gets a strict Content-Security-Policy: scripts, styles, pictures, video and requests from
this origin only, nothing inline, no frames. Nothing here needs credentials: the page signs in
through the API (`POST /api/session`), which guards all footage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from ccvault.api.errors import ApiError

router = APIRouter(include_in_schema=False)

PLACEHOLDER = b"{{assets}}"  # in index.html: where the page's files are served from
TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self' blob:",  # live view: a MediaSource is played from a blob: URL
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
# Every response: the declared type is the type (no sniffing a video into a script).
COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


@dataclass(frozen=True)
class Assets:
    digest: str
    files: dict[str, bytes]  # name → bytes, for /assets/<digest>/<name>
    index: bytes  # index.html with PLACEHOLDER filled in


@lru_cache(maxsize=1)
def assets() -> Assets:
    """Read once: the files are part of the installed package and change only with it."""
    web = resources.files("ccvault") / "web"
    files = {
        f.name: f.read_bytes()
        for f in web.iterdir()
        if f.is_file() and f.name.rpartition(".")[2] in TYPES
    }
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    short = digest.hexdigest()[:16]
    index = (web / "index.html").read_bytes().replace(PLACEHOLDER, f"/assets/{short}".encode())
    return Assets(short, files, index)


@router.get("/")
def page(request: Request) -> Response:
    """The page. `no-cache`: the browser asks again each time (a 304 while unchanged)."""
    found = assets()
    etag = f'"{found.digest}"'
    headers = {**COMMON, "content-security-policy": CSP, "cache-control": "no-cache", "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.index, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/assets/{digest}/{name}")
def asset(digest: str, name: str) -> Response:
    """A script or the stylesheet. Only the current digest is served: an old URL would be
    cached for a year with whatever it got, so it gets a 404 instead."""
    found = assets()
    body = found.files.get(name)
    if digest != found.digest or body is None:
        raise ApiError(404, "not_found", f"no asset {name!r} here")
    return Response(
        body,
        media_type=TYPES[name.rpartition(".")[2]],
        headers={**COMMON, "cache-control": "public, max-age=31536000, immutable"},
    )
