"""Sending a file that is already open, with byte ranges, so footage purged mid-stream is fine.

Starlette's FileResponse opens its path only when the body is sent: a segment purged between
the handler and the first byte would fail after the status line went out. Here the handler
opens the file (a vanished file is a clean 404), and this response sends from that descriptor
and closes it whatever happens; on Linux an unlinked file stays readable through it. One
byte range per request (what players send); a multi-range request gets the whole file,
which RFC 9110 allows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ccvault.api.errors import error_body
from ccvault.storage.objects import ObjectFile

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) asked for; None = the whole file (no, malformed or multi-range header).
    Raises ValueError when the range starts past the end (416)."""
    match = RANGE.match(header.replace(" ", "")) if header else None
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        if int(last) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - int(last)), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size:
        raise ValueError("range starts past the end")
    return None if end <= start else (start, end)


def starts_playback(request: Request) -> bool:
    """A GET whose answer begins at the file's first byte: no Range (or one this server
    answers with the whole file), or a range from byte 0 — what a player asks as it opens a
    file. A HEAD sends no footage: it starts nothing."""
    if request.method == "HEAD":
        return False
    match = RANGE.match(request.headers.get("range", "").replace(" ", ""))
    return match is None or match.group(1) == "0" or not (match.group(1) or match.group(2))


class OpenFileResponse(Response):
    def __init__(
        self,
        fd: int | ObjectFile,
        request_headers: Mapping[str, str],
        media_type: str,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        on_whole: Callable[[str], None] | None = None,
    ) -> None:
        """Takes ownership of fd: it is closed when the response ends, or here on error. An
        ObjectFile (a segment on an s3 volume) is streamed from one ranged GET per response.
        `on_whole` gets the SHA-256 of the file when the whole of it was sent (a free check
        of the bytes; it runs in a worker thread)."""
        self.fd = fd
        self.on_whole = on_whole
        self.digest: str | None = None  # the file's SHA-256, once all of it was sent
        self.background = None
        self.media_type = media_type
        self.error = b""
        try:
            size = self.size = fd.size if isinstance(fd, ObjectFile) else os.fstat(fd).st_size
            extra = {"accept-ranges": "bytes", **(headers or {})}
            if etag:
                extra["etag"] = etag
            self.span: tuple[int, int] | None = (0, size)
            status = 200
            if_range = request_headers.get("if-range")
            try:
                wanted = (
                    byte_range(request_headers.get("range"), size)
                    if if_range is None or (etag is not None and if_range == etag)
                    else None
                )
            except ValueError as exc:
                wanted, status, self.span = None, 416, None
                extra["content-range"] = f"bytes */{size}"
                extra["content-type"] = "application/json"
                self.error = json.dumps(
                    error_body("range_not_satisfiable", f"Range: {exc}", "Range")
                ).encode()
            if wanted is not None:
                status, self.span = 206, wanted
                extra["content-range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{size}"
            extra["content-length"] = str(
                self.span[1] - self.span[0] if self.span else len(self.error)
            )
            self.status_code = status
            self.init_headers(extra)
        except BaseException:
            _close(fd)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if self.span is None or scope.get("method") == "HEAD":
                await send(
                    {
                        "type": "http.response.body",
                        "more_body": False,
                        "body": b"" if scope.get("method") == "HEAD" else self.error,
                    }
                )
                return
            async with anyio.create_task_group() as group:

                async def body() -> None:
                    await self._send_body(send)
                    group.cancel_scope.cancel()

                group.start_soon(body)
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()  # the client left: stop reading the file
            if self.digest is not None and self.on_whole is not None:  # the whole file went out
                await anyio.to_thread.run_sync(self.on_whole, self.digest)
        finally:
            _close(self.fd)

    async def _send_body(self, send: Send) -> None:
        assert self.span is not None
        at, end = self.span
        digest = hashlib.sha256() if self.on_whole and self.span == (0, self.size) else None

        source = self.fd
        stream = source.stream(at, end) if isinstance(source, ObjectFile) else None

        def read(offset: int) -> bytes:
            if stream is not None:
                chunk = next(stream, b"")
            else:
                assert isinstance(source, int)
                chunk = os.pread(source, min(CHUNK, end - offset), offset)
            if digest is not None:
                digest.update(chunk)
            return chunk

        while at < end:
            chunk = await anyio.to_thread.run_sync(read, at)
            if not chunk:  # the file shrank under us (never footage: rows are immutable)
                raise OSError("file ended before its announced length")
            at += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": at < end})
        if digest is not None:
            self.digest = digest.hexdigest()


def _close(source: int | ObjectFile) -> None:
    if isinstance(source, int):
        os.close(source)
