"""An s3 volume: a bucket (under a key prefix) on an S3-compatible object store, via boto3.

What ccvault asks of the store, and why each is done so:
- every failure of the endpoint is an `ObjectStoreError` (an OSError), so the callers' handling
  of a failing disk (count it failed, retry next pass, `volume_unavailable`) covers a failing
  server too; botocore retries each request first (standard mode: backoff with jitter);
- uploads are our own multipart loop: each part carries a Content-MD5 the server checks (RGW 16
  ignores the SDK's additional SHA-256 checksums on parts and refuses the aws-chunked CRC32
  boto3 sends by default), the source is hashed as it is read, and `max_mbit` paces it;
- an upload is never trusted: `sha256()` reads the object back, and only a match with the
  catalogued hash may become the segment's copy (`retention.executor`);
- Object Lock is set after the upload (RGW 16 drops lock headers of multipart uploads), on the
  version that was verified.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ccvault.config.model import VolumeConfig
from ccvault.config.secrets import read_secret

MIB = 1 << 20
PART_BYTES = 16 * MIB  # a segment above this goes up in parts (S3's minimum part is 5 MiB)
READ_BYTES = MIB
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per request
MARKER = ".ccvault-volume.json"


class ObjectStoreError(OSError):
    """The object store failed a request (after botocore's retries) or refused it."""

    def __init__(self, what: str, problem: str, code: str = "") -> None:
        super().__init__(f"{what}: {problem}")
        self.strerror = f"{what}: {problem}"
        self.code = code  # the S3 error code (AccessDenied, NoSuchBucket, ...), "" if none


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """botocore's exceptions, whatever their class, as one ObjectStoreError with the code."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        raise ObjectStoreError(what, f"{code} {err.get('Message') or ''}".strip(), code) from None
    except BotoCoreError as exc:
        raise ObjectStoreError(what, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Uploaded:
    bytes: int
    sha256: str  # of the bytes read from the source as they were sent
    version: str | None  # the object version (a versioned / Object Lock bucket), else None


@dataclass(frozen=True, slots=True)
class LockState:
    until_ms: int | None  # retain-until (UTC ms); None: no retention
    mode: str | None  # governance | compliance
    legal_hold: bool


class Pacer:
    """Keeps a bucket's uploads, all threads together, at or under `mbit` megabits per second
    (0: no limit): each chunk gets its own time slot, waits for its start before it is sent
    and for its end after, so no idle time builds up a burst."""

    def __init__(self, mbit: float) -> None:
        self.rate = mbit * 1_000_000 / 8
        self.lock = threading.Lock()
        self.free_at = 0.0

    @contextlib.contextmanager
    def slot(self, n: int) -> Iterator[None]:
        if self.rate <= 0:
            yield
            return
        with self.lock:
            start = max(time.monotonic(), self.free_at)
            self.free_at = end = start + n / self.rate
        time.sleep(max(0.0, start - time.monotonic()))
        yield
        time.sleep(max(0.0, end - time.monotonic()))


class Bucket:
    """One s3 volume's bucket and prefix, and the requests ccvault makes of it."""

    def __init__(self, cfg: VolumeConfig, client: Any, probe: Any = None) -> None:
        self.cfg, self.client = cfg, client
        # The identity check runs at every health check: one quick try, no retries, so an
        # endpoint that is away makes the volume unavailable at once, not after backoffs.
        self.probe = probe or client
        self.name = cfg.bucket or ""
        self.locking = cfg.object_lock != "off"
        self.pacer = Pacer(cfg.max_mbit)  # shared by every upload to this bucket

    def key(self, rel: str) -> str:
        return f"{self.cfg.prefix}{rel}"

    def where(self, rel: str = "") -> str:
        return f"s3://{self.name}/{self.key(rel)}"

    # --- identity and set-up ------------------------------------------------------------

    def read_marker(self) -> dict | None:
        """The volume's identity object; None when absent (or not JSON: not ours)."""
        try:
            with _errors(self.where(MARKER)):
                body = self.probe.get_object(Bucket=self.name, Key=self.key(MARKER))["Body"]
                text = body.read(65536)
        except ObjectStoreError as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "404"):
                return None  # (no bucket yet: `volume init` makes it)
            raise
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_marker(self, data: dict) -> None:
        """Identity in one PUT: S3 replaces an object atomically (old or new, never half)."""
        body = json.dumps(data).encode()
        with _errors(self.where(MARKER)):
            self.client.put_object(
                Bucket=self.name, Key=self.key(MARKER), Body=body, ContentMD5=_md5(body)
            )

    def ensure_bucket(self) -> bool:
        """Create the bucket when missing (with Object Lock when configured); True if made."""
        with _errors(f"s3://{self.name}"):
            try:
                self.client.head_bucket(Bucket=self.name)
                return False
            except Exception as exc:
                if _status(exc) != 404:
                    raise
            self.client.create_bucket(Bucket=self.name, ObjectLockEnabledForBucket=self.locking)
            return True

    def lock_enabled(self) -> bool:
        with _errors(f"s3://{self.name}"):
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.name)
            except Exception as exc:
                if _status(exc) == 404:
                    return False
                raise
        return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def foreign_objects(self) -> bool:
        """Anything under the prefix besides our marker (a bucket not ours to write)."""
        with _errors(self.where()):
            page = self.client.list_objects_v2(Bucket=self.name, Prefix=self.cfg.prefix, MaxKeys=2)
        return any(o["Key"] != self.key(MARKER) for o in page.get("Contents", []))

    # --- objects ------------------------------------------------------------------------

    def exists(self, rel: str) -> bool:
        with _errors(self.where(rel)):
            try:
                self.client.head_object(Bucket=self.name, Key=self.key(rel))
                return True
            except Exception as exc:
                if _status(exc) == 404:
                    return False
                raise

    def upload(self, src: Path, rel: str) -> Uploaded:
        """Send src's bytes to rel (one PUT, or parts for a big file), hashing them on the way."""
        digest = hashlib.sha256()
        key = self.key(rel)
        with open(src, "rb") as f, _errors(self.where(rel)):
            size = f.seek(0, 2)
            f.seek(0)
            if size <= PART_BYTES:
                data = f.read()
                digest.update(data)
                with self.pacer.slot(len(data)):
                    answer = self.client.put_object(
                        Bucket=self.name, Key=key, Body=data, ContentMD5=_md5(data)
                    )
            else:
                answer = self._multipart(f, key, digest)
        return Uploaded(size, digest.hexdigest(), answer.get("VersionId"))

    def _multipart(self, f: BinaryIO, key: str, digest: Any) -> dict:
        upload_id = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        try:
            parts = []
            while data := f.read(PART_BYTES):
                digest.update(data)
                number = len(parts) + 1
                with self.pacer.slot(len(data)):
                    etag = self.client.upload_part(
                        Bucket=self.name,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ContentMD5=_md5(data),
                    )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            return self.client.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
            raise

    def sha256(self, rel: str, version: str | None = None) -> tuple[str, int]:
        """Read the stored object back: its SHA-256 and size (the proof an upload is whole)."""
        digest, size = hashlib.sha256(), 0
        with _errors(self.where(rel)):
            extra = {"VersionId": version} if version else {}
            body = self.client.get_object(Bucket=self.name, Key=self.key(rel), **extra)["Body"]
            while chunk := body.read(READ_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def open(self, rel: str, first: int = 0, last: int | None = None) -> Any:
        """A streaming body of bytes first..last (inclusive) of rel: a ranged GET."""
        span = f"bytes={first}-{'' if last is None else last}"
        with _errors(self.where(rel)):
            return self.client.get_object(Bucket=self.name, Key=self.key(rel), Range=span)["Body"]

    def names(self) -> Iterator[str]:
        """Every object under the prefix but the marker, relative to the prefix."""
        pages = self.client.get_paginator("list_objects_v2")
        with _errors(self.where()):
            for page in pages.paginate(Bucket=self.name, Prefix=self.cfg.prefix):
                for item in page.get("Contents", []):
                    if item["Key"] != self.key(MARKER):
                        yield item["Key"].removeprefix(self.cfg.prefix)

    def versions(self, rels: list[str]) -> list[tuple[str, str | None]]:
        """(key, version id) of every version and delete marker of each rel: one listing per
        directory (a segment hour's), not per object."""
        wanted = {self.key(rel) for rel in rels}
        folders = sorted({key.rpartition("/")[0] + "/" for key in wanted})
        pages = self.client.get_paginator("list_object_versions")
        out = []
        for folder in folders:
            with _errors(self.where()):
                for page in pages.paginate(Bucket=self.name, Prefix=folder, Delimiter="/"):
                    for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if item["Key"] in wanted:
                            out.append((item["Key"], item.get("VersionId")))
        return out

    def remove(self, rels: list[str]) -> dict[str, str]:
        """Delete every version of each rel, in DeleteObjects batches; what the server
        refused (a locked version: key → its error code). A key already gone is fine."""
        targets = self.versions(rels)
        refused: dict[str, str] = {}
        for i in range(0, len(targets), DELETE_BATCH):
            batch = [
                {"Key": k, **({"VersionId": v} if v and v != "null" else {})}
                for k, v in targets[i : i + DELETE_BATCH]
            ]
            with _errors(self.where()):
                answer = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )
            for err in answer.get("Errors", []):
                refused[err["Key"].removeprefix(self.cfg.prefix)] = err.get("Code", "")
        return refused

    def retain(self, rel: str, until_ms: int, version: str | None = None) -> None:
        """Object Lock retention of rel until until_ms, in the configured mode."""
        until = datetime.fromtimestamp(until_ms / 1000, UTC)
        extra = {"VersionId": version} if version else {}
        with _errors(self.where(rel)):
            self.client.put_object_retention(
                Bucket=self.name,
                Key=self.key(rel),
                Retention={"Mode": self.cfg.object_lock.upper(), "RetainUntilDate": until},
                **extra,
            )

    def lock_state(self, rel: str) -> LockState:
        """The object's lock as the store has it: retention (mode, until) and legal hold."""
        where = {"Bucket": self.name, "Key": self.key(rel)}
        with _errors(self.where(rel)):
            got = _unless_unset(self.client.get_object_retention, where)
            held = _unless_unset(self.client.get_object_legal_hold, where)
        retention = got.get("Retention", {})
        until = retention.get("RetainUntilDate")
        return LockState(
            int(until.timestamp() * 1000) if until else None,
            str(retention.get("Mode", "")).lower() or None,
            held.get("LegalHold", {}).get("Status") == "ON",
        )

    def legal_hold(self, rel: str, on: bool) -> None:
        with _errors(self.where(rel)):
            self.client.put_object_legal_hold(
                Bucket=self.name, Key=self.key(rel), LegalHold={"Status": "ON" if on else "OFF"}
            )


@dataclass(frozen=True, slots=True)
class ObjectFile:
    """A segment on an s3 volume, opened for reading: its size (the catalog's, which its
    migration proved) and its bytes by ranged GETs, streamed as they arrive."""

    bucket: Bucket
    rel: str
    size: int

    def stream(self, first: int, end: int) -> Iterator[bytes]:
        """Bytes first..end (exclusive), in chunks as the server sends them."""
        if first >= end:
            return
        body = self.bucket.open(self.rel, first, end - 1)
        try:
            while True:
                with _errors(self.bucket.where(self.rel)):
                    chunk = body.read(READ_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def to_file(self, out: BinaryIO) -> str:
        """Copy the whole object into out; the SHA-256 of what was copied."""
        digest = hashlib.sha256()
        for chunk in self.stream(0, self.size):
            digest.update(chunk)
            out.write(chunk)
        return digest.hexdigest()


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # what S3 checks a body with


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _unless_unset(call: Any, args: dict) -> dict:
    """A lock setting asked of the store; {} when the object has none (S3 answers 404, RGW
    sometimes 400)."""
    try:
        return call(**args)
    except Exception as exc:
        if _status(exc) not in (400, 404):
            raise
        return {}


@functools.lru_cache(maxsize=16)
def bucket_of(cfg: VolumeConfig) -> Bucket:
    """The bucket of an s3 volume's config (one client per config: creating one costs ~0.1 s,
    and boto3 clients are thread-safe)."""
    import boto3
    from botocore.config import Config as BotoConfig

    keys: dict[str, Any] = {}
    if cfg.access_key_file is not None and cfg.secret_key_file is not None:
        keys = {
            "aws_access_key_id": read_secret(cfg.access_key_file, None),
            "aws_secret_access_key": read_secret(cfg.secret_key_file, None),
        }
    verify: bool | str = str(cfg.ca_file) if cfg.ca_file is not None else cfg.tls_verify

    def client(attempts: int, connect_s: float, read_s: float) -> Any:
        options = BotoConfig(
            s3={"addressing_style": "path"},
            # Only where S3 requires one: RGW 16 refuses boto3's default aws-chunked CRC32
            # upload (every part carries a Content-MD5 instead, and the object is read back).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=connect_s,
            read_timeout=read_s,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint,
            region_name=cfg.region,
            verify=verify,
            config=options,
            **keys,
        )

    return Bucket(cfg, client(4, 5, 60), probe=client(1, 3, 10))
