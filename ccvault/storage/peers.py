"""Another node's footage, streamed from that node's API (`GET /api/segments/{id}/file`),
and what only that node can say of it (`GET /api/explain`).

The catalog is shared but the files are not: a segment lives on its node's volume, and any
other node reaches it through the owner's HTTP API with this node's peer token, its TLS
certificate verified (the system's CAs plus `[node] ca_file`). No redirect is followed: the
token goes to the URL the catalog names and nowhere else. stdlib `urllib.request`, as the
webhook channel: httpx is only a test dependency, and one streamed GET needs no more.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import sqlite3
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ccvault.catalog.nodes import all_nodes
from ccvault.catalog.rows import Segment
from ccvault.config.node import NodeConfig
from ccvault.config.secrets import read_secret
from ccvault.errors import Busy, CheckFailed, NotFound
from ccvault.timefmt import local_text, utc_text

CHUNK = 1 << 20
TIMEOUT_S = 30
# Headers of the owner's answer passed on to whoever asked this node: the byte range only
# (what the bytes are is said from the catalog's row).
PASSED_ON = ("content-length", "content-range", "accept-ranges")
MAX_JSON = 1 << 20  # an answer in JSON (or an error's body) read from another node, at most


class NodeUnavailable(Busy):
    """The node holding the footage cannot serve it now (down, no URL, unreachable): busy,
    try again later (exit 5, HTTP 503); its footage is not gone."""


def reasons(conn: sqlite3.Connection, me: str, now_ms: int, tz: ZoneInfo) -> dict[str, str]:
    """node → why its footage cannot be played from this node now; nodes not named can."""
    out = {}
    for node in all_nodes(conn).values():
        if node.name == me:
            continue
        if not node.up(now_ms):
            out[node.name] = f"node {node.name} down since {local_text(node.last_seen_ms, tz)}"
        elif node.url is None:
            out[node.name] = f"node {node.name} has no [node] url: its footage is not served"
    return out


@dataclass(frozen=True)
class Remote:
    """Where another node's segment is fetched from."""

    node: str
    url: str  # the owner's API base URL

    @classmethod
    def of(
        cls, conn: sqlite3.Connection, seg: Segment, me: str, now_ms: int, tz: ZoneInfo
    ) -> Remote | None:
        """None when the segment is this node's (or no node's yet); NodeUnavailable when its
        node cannot serve it now."""
        if seg.node is None or seg.node == me:
            return None
        return cls.of_node(conn, seg.node, me, now_ms, tz, f"segment {seg.id}")

    @classmethod
    def of_node(
        cls, conn: sqlite3.Connection, name: str, me: str, now_ms: int, tz: ZoneInfo, what: str
    ) -> Remote:
        """Where another node is asked; NodeUnavailable (about `what`) when it cannot be now."""
        node = all_nodes(conn).get(name)
        why = reasons(conn, me, now_ms, tz).get(name)
        if node is None or node.url is None or why is not None:
            why = why or f"node {name} has not started on this catalog yet"
            raise NodeUnavailable(what, f"unavailable ({why})")
        return cls(name, node.url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is an error here: the token stays with the URL named


def _opener(config: NodeConfig) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()
    if config.ca_file is not None:
        context.load_verify_locations(cafile=str(config.ca_file))
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect)


def open_segment(
    config: NodeConfig, remote: Remote, segment_id: int, headers: Mapping[str, str] = {}
) -> http.client.HTTPResponse:
    """The owner's answer for the segment's file (200, or 206 for a Range), still to be
    read. Its errors become ours: 404 NotFound, 401/403 a token problem, else unavailable."""
    what = f"segment {segment_id} on node {remote.node}"
    try:
        return _get(config, remote, f"/api/segments/{segment_id}/file", what, headers)
    except _Missing:
        raise NotFound(what, "the node has no such file") from None


def explain(config: NodeConfig, remote: Remote, camera: str, at_ms: int) -> dict:
    """The owner's `GET /api/explain` answer (`views.explain`); NotFound with the owner's
    words when it has no footage then (why it is gone), or does not know the camera."""
    query = urllib.parse.urlencode({"camera": camera, "at": utc_text(at_ms)})
    try:
        with _get(config, remote, f"/api/explain?{query}", f"node {remote.node}") as answer:
            return json.loads(answer.read(MAX_JSON))  # type: ignore[no-any-return]
    except _Missing as missing:
        raise NotFound(f"node {remote.node}", missing.message) from None
    except ValueError:
        raise NodeUnavailable(
            f"node {remote.node}", "unavailable (its answer is not JSON)"
        ) from None


class _Missing(Exception):
    """The owner answered 404; `message` is its error's, as its API words it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _get(
    config: NodeConfig, remote: Remote, path: str, what: str, headers: Mapping[str, str] = {}
) -> http.client.HTTPResponse:
    """GET `path` of the owner's API with this node's peer token: its 200 (or 206) answer,
    still to be read; _Missing for a 404, NodeUnavailable for anything else."""
    if config.peer_token_file is None:
        raise NodeUnavailable(what, "unavailable (this node has no node.peer_token_file)")
    token = read_secret(config.peer_token_file, None) or ""
    request = urllib.request.Request(
        f"{remote.url}{path}", headers={**headers, "Authorization": f"Bearer {token}"}
    )
    try:
        return _opener(config).open(request, timeout=TIMEOUT_S)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_JSON)
        exc.close()
        if exc.code == 404:
            raise _Missing(_error_message(body)) from None
        if exc.code in (401, 403):
            why = f"node {remote.node} refused this node's node.peer_token_file"
        else:
            why = f"node {remote.node} answered {exc.code}"
        raise NodeUnavailable(what, f"unavailable ({why})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NodeUnavailable(
            what, f"unavailable (node {remote.node} unreachable: {reason})"
        ) from None


def _error_message(body: bytes) -> str:
    """The message of an API error body (`{"error": {"message": ...}}`), else what it says."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()[:500] or "not found"


def chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body, a chunk at a time (closed at the end, or when the reader stops)."""
    with response:
        while chunk := response.read(CHUNK):
            yield chunk


def fetch_verified(config: NodeConfig, remote: Remote, seg: Segment, out: object) -> int:
    """The whole file written to `out` (a binary file), its SHA-256 checked against the
    catalog's: bytes that do not match are evidence of nothing (CheckFailed, exit 1)."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks(open_segment(config, remote, seg.id)):
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)  # type: ignore[attr-defined]
    if digest.hexdigest() != seg.sha256:
        raise CheckFailed(
            f"segment {seg.id} from node {remote.node}",
            f"its SHA-256 is {digest.hexdigest()}, the catalog says {seg.sha256}",
        )
    return size


@contextmanager
def peer_copies(
    config: NodeConfig, work: Path, remotes: dict[int, tuple[Segment, Remote]]
) -> Iterator[dict[int, Path]]:
    """Each other node's segment (id → it and where it is fetched from) copied into `work`,
    its SHA-256 checked against the catalog (CheckFailed: no bundle of bytes that are not the
    footage), for as long as the block runs (an export reads them); the copies go at the end,
    a crash's leftovers with the next export of that id."""
    shutil.rmtree(work, ignore_errors=True)
    try:
        fetched = {}
        if remotes:
            work.mkdir(mode=0o700, parents=True)
        for seg_id, (seg, remote) in remotes.items():
            path = work / f"{seg_id}.mp4"
            with open(path, "xb") as out:
                fetch_verified(config, remote, seg, out)
            fetched[seg_id] = path
        yield fetched
    finally:
        shutil.rmtree(work, ignore_errors=True)
