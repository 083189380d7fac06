"""What the real S3 peer (Ceph RGW 16.2 from Debian 12, tests/peers/s3.py) does for a client.

These pin the behaviour ccvault's footage retention would build on: Object Lock (COMPLIANCE,
GOVERNANCE, legal hold), ranged reads, multipart uploads and batch deletes, through boto3
against a real radosgw. They also pin where RGW 16 differs from AWS S3, so a change of server
shows up here first:

* additional checksums (x-amz-checksum-*, ChecksumAlgorithm) are accepted and ignored: never
  verified, never returned. Content-MD5 is verified.
* Object Lock headers on CreateMultipartUpload are dropped: the completed object is not
  locked unless the bucket has a default retention or PutObjectRetention follows.
* CopyObject carries the source version's retention and legal hold to the copy, whatever the
  request says (AWS applies the request's or the bucket default's instead).
* CompleteMultipartUpload answers with an empty ETag; HEAD has the real one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="the S3 peer tests need boto3 (pip install boto3)")

from botocore.exceptions import ClientError

from tests.peers import s3_fixture
from tests.peers.s3 import SCRIPT, S3Server

# The fixtures, taken over by assignment (an import would read as unused to the linter).
s3_server = s3_fixture.s3_server
s3_client = s3_fixture.s3_client
s3_bucket = s3_fixture.s3_bucket

# The first test may include a one-off apt install of Ceph (~1 min) in the fixture's start.
pytestmark = pytest.mark.timeout(150)

MiB = 1 << 20


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a refused request."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def version_ids(s3: Any, bucket: str, key: str) -> set[str]:
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return {v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key}


def put_locked(s3: Any, bucket: str, key: str, body: bytes, mode: str, minutes: float) -> str:
    """Put a version under retention ``mode`` for ``minutes``; its version id."""
    until = now() + dt.timedelta(minutes=minutes)
    r = s3.put_object(
        Bucket=bucket, Key=key, Body=body, ObjectLockMode=mode, ObjectLockRetainUntilDate=until
    )
    return str(r["VersionId"])


# --------------------------------------------------------------------------
# buckets


def test_lock_bucket_is_versioned_for_good_and_applies_its_default_retention(
    s3_client: Any, s3_bucket: str
) -> None:
    s3, bucket = s3_client, s3_bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert config["ObjectLockEnabled"] == "Enabled"

    with pytest.raises(ClientError) as refused:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert error(refused) == (409, "InvalidBucketState")

    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(
        Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    version = s3.put_object(Bucket=bucket, Key="clip", Body=b"footage")["VersionId"]
    retention = s3.get_object_retention(Bucket=bucket, Key="clip", VersionId=version)["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert abs(retention["RetainUntilDate"] - (now() + dt.timedelta(days=1))) < dt.timedelta(
        minutes=5
    )
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="clip", VersionId=version)
    assert error(refused) == (403, "AccessDenied")


def test_object_lock_needs_a_bucket_created_with_it(s3_client: Any) -> None:
    s3 = s3_client
    bucket = f"plain-{os.urandom(6).hex()}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as refused:
        put_locked(s3, bucket, "clip", b"x", "COMPLIANCE", 3)
    assert error(refused) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as refused:
        s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        )
    assert error(refused) == (409, "InvalidBucketState")


# --------------------------------------------------------------------------
# retention and legal hold


def test_compliance_version_cannot_be_deleted_or_shortened_even_with_bypass(
    s3_client: Any, s3_bucket: str
) -> None:
    s3, bucket = s3_client, s3_bucket
    version = put_locked(s3, bucket, "evidence", b"compliance footage", "COMPLIANCE", 3)
    head = s3.head_object(Bucket=bucket, Key="evidence", VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > now() + dt.timedelta(minutes=2)

    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(
                Bucket=bucket, Key="evidence", VersionId=version, BypassGovernanceRetention=bypass
            )
        assert error(refused) == (403, "AccessDenied"), f"bypass={bypass}"

    def set_retention(mode: str, until: dt.datetime, bypass: bool = False) -> None:
        s3.put_object_retention(
            Bucket=bucket,
            Key="evidence",
            VersionId=version,
            Retention={"Mode": mode, "RetainUntilDate": until},
            BypassGovernanceRetention=bypass,
        )

    with pytest.raises(ClientError) as refused:
        set_retention("COMPLIANCE", now() + dt.timedelta(seconds=5), bypass=True)
    assert error(refused) == (403, "AccessDenied")
    with pytest.raises(ClientError) as refused:
        set_retention("GOVERNANCE", now() + dt.timedelta(minutes=10), bypass=True)
    assert error(refused) == (403, "AccessDenied")
    longer = (now() + dt.timedelta(minutes=4)).replace(microsecond=0)
    set_retention("COMPLIANCE", longer)
    retention = s3.get_object_retention(Bucket=bucket, Key="evidence", VersionId=version)
    assert retention["Retention"]["RetainUntilDate"] == longer

    # A plain DELETE only hides it behind a delete marker: the locked version stays readable.
    assert s3.delete_object(Bucket=bucket, Key="evidence")["DeleteMarker"] is True
    with pytest.raises(ClientError) as hidden:
        s3.get_object(Bucket=bucket, Key="evidence")
    assert error(hidden)[0] == 404
    body = s3.get_object(Bucket=bucket, Key="evidence", VersionId=version)["Body"].read()
    assert body == b"compliance footage"
    assert version in version_ids(s3, bucket, "evidence")


def test_compliance_lock_ends_at_its_retain_until_date(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    # Whole seconds: the retain-until header carries no fraction of a second.
    until = (now() + dt.timedelta(seconds=3)).replace(microsecond=0)
    version = s3.put_object(
        Bucket=bucket,
        Key="short",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="short", VersionId=version)
    assert error(refused) == (403, "AccessDenied")

    deadline = time.monotonic() + 20
    while True:
        try:
            s3.delete_object(Bucket=bucket, Key="short", VersionId=version)
            break
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDenied"
            assert time.monotonic() < deadline, f"still locked 20 s after {until}"
            time.sleep(0.2)
    assert now() >= until, "deleted before its retain-until date"
    assert version not in version_ids(s3, bucket, "short")


def test_governance_version_is_deletable_only_with_bypass(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    version = put_locked(s3, bucket, "routine", b"governance footage", "GOVERNANCE", 3)
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="routine", VersionId=version)
    assert error(refused) == (403, "AccessDenied")

    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": now() + dt.timedelta(minutes=1)}
    with pytest.raises(ClientError) as refused:
        s3.put_object_retention(Bucket=bucket, Key="routine", VersionId=version, Retention=shorter)
    assert error(refused) == (403, "AccessDenied")
    s3.put_object_retention(
        Bucket=bucket,
        Key="routine",
        VersionId=version,
        Retention=shorter,
        BypassGovernanceRetention=True,
    )

    s3.delete_object(
        Bucket=bucket, Key="routine", VersionId=version, BypassGovernanceRetention=True
    )
    assert version not in version_ids(s3, bucket, "routine")
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=bucket, Key="routine", VersionId=version)
    assert error(gone)[0] == 404


def test_legal_hold_blocks_delete_until_released(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    held = s3.put_object(
        Bucket=bucket, Key="held", Body=b"held footage", ObjectLockLegalHoldStatus="ON"
    )["VersionId"]
    later = s3.put_object(Bucket=bucket, Key="later", Body=b"footage")["VersionId"]
    s3.put_object_legal_hold(
        Bucket=bucket, Key="later", VersionId=later, LegalHold={"Status": "ON"}
    )

    for key, version in (("held", held), ("later", later)):
        hold = s3.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version)
        assert hold["LegalHold"]["Status"] == "ON"
        for bypass in (False, True):
            with pytest.raises(ClientError) as refused:
                s3.delete_object(
                    Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=bypass
                )
            assert error(refused) == (403, "AccessDenied"), f"{key} bypass={bypass}"

        s3.put_object_legal_hold(
            Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "OFF"}
        )
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        assert version not in version_ids(s3, bucket, key)


# --------------------------------------------------------------------------
# reads, uploads, deletes


def test_ranged_get_returns_exactly_the_requested_bytes(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    data = os.urandom(MiB + 7)
    s3.put_object(Bucket=bucket, Key="segment", Body=data)
    n = len(data)
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=0-187": (0, 187),
        f"bytes=500000-{n - 1}": (500000, n - 1),
        "bytes=1000-": (1000, n - 1),
        "bytes=-10": (n - 10, n - 1),
        f"bytes={n - 5}-{n + 100}": (n - 5, n - 1),  # past the end: cut at the end
    }
    for spec, (first, last) in cases.items():
        r = s3.get_object(Bucket=bucket, Key="segment", Range=spec)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, spec
        assert r["ContentRange"] == f"bytes {first}-{last}/{n}", spec
        assert r["Body"].read() == data[first : last + 1], spec

    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="segment", Range=f"bytes={n + 10}-")
    assert error(refused) == (416, "InvalidRange")


def test_multipart_upload_with_sha256_checksums(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    parts = [os.urandom(5 * MiB + 1000 * i) for i in range(1, 4)]
    data = b"".join(parts)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="export.mp4", ChecksumAlgorithm="SHA256")
    done = []
    for number, part in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key="export.mp4",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="SHA256",
        )
        assert r["ETag"] == f'"{hashlib.md5(part).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": sha256_b64(part)})
    listed = s3.list_parts(Bucket=bucket, Key="export.mp4", UploadId=upload["UploadId"])
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    completed = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="export.mp4",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )

    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    etag = f'"{hashlib.md5(digests).hexdigest()}-3"'
    assert completed["ETag"] in ("", etag)  # RGW 16 answers Complete with <ETag></ETag>
    head = s3.head_object(Bucket=bucket, Key="export.mp4", ChecksumMode="ENABLED")
    assert head["ETag"] == etag
    assert head["ContentLength"] == len(data)
    if "ChecksumSHA256" in head:  # not from RGW 16 (see the next test); AWS: composite "-3"
        composite = b"".join(hashlib.sha256(p).digest() for p in parts)
        assert head["ChecksumSHA256"] == f"{sha256_b64(composite)}-3"
    got = s3.get_object(Bucket=bucket, Key="export.mp4")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    edge = len(parts[0])
    r = s3.get_object(Bucket=bucket, Key="export.mp4", Range=f"bytes={edge - 3}-{edge + 2}")
    assert r["Body"].read() == data[edge - 3 : edge + 3]


def test_rgw16_verifies_content_md5_but_ignores_additional_checksums(
    s3_client: Any, s3_bucket: str
) -> None:
    s3, bucket = s3_client, s3_bucket
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=md5_b64(b"xyz"))
    assert error(refused) == (400, "BadDigest")
    s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=md5_b64(b"abc"))

    upload = s3.create_multipart_upload(Bucket=bucket, Key="part-md5")
    with pytest.raises(ClientError) as refused:
        s3.upload_part(
            Bucket=bucket,
            Key="part-md5",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"abc",
            ContentMD5=md5_b64(b"xyz"),
        )
    assert error(refused) == (400, "BadDigest")
    s3.abort_multipart_upload(Bucket=bucket, Key="part-md5", UploadId=upload["UploadId"])

    # A wrong SHA-256 is stored without complaint and no checksum comes back: RGW 16 has no
    # S3 additional checksums. Integrity on upload has to rest on Content-MD5 (and the ETag).
    s3.put_object(Bucket=bucket, Key="sha", Body=b"abc", ChecksumSHA256=sha256_b64(b"xyz"))
    head = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert not any(k.startswith("Checksum") for k in head), head
    assert s3.get_object(Bucket=bucket, Key="sha")["Body"].read() == b"abc"


def test_delete_objects_deletes_the_unlocked_and_reports_the_locked(
    s3_client: Any, s3_bucket: str
) -> None:
    s3, bucket = s3_client, s3_bucket
    plain = {
        f"seg-{i}": s3.put_object(Bucket=bucket, Key=f"seg-{i}", Body=b"x")["VersionId"]
        for i in range(4)
    }
    locked = {
        "kept": put_locked(s3, bucket, "kept", b"x", "COMPLIANCE", 3),
        "governed": put_locked(s3, bucket, "governed", b"x", "GOVERNANCE", 3),
        "held": s3.put_object(Bucket=bucket, Key="held", Body=b"x", ObjectLockLegalHoldStatus="ON")[
            "VersionId"
        ],
    }
    objects = [{"Key": k, "VersionId": v} for k, v in {**plain, **locked}.items()]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200  # one answer, per-key outcomes
    assert {(d["Key"], d["VersionId"]) for d in r["Deleted"]} == set(plain.items())
    assert {(e["Key"], e["VersionId"], e["Code"]) for e in r["Errors"]} == {
        (k, v, "AccessDenied") for k, v in locked.items()
    }

    # With the bypass header only the GOVERNANCE version goes; Quiet lists just the failures.
    r = s3.delete_objects(
        Bucket=bucket,
        BypassGovernanceRetention=True,
        Delete={"Quiet": True, "Objects": [{"Key": k, "VersionId": v} for k, v in locked.items()]},
    )
    assert "Deleted" not in r
    assert {e["Key"] for e in r["Errors"]} == {"kept", "held"}
    listing = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert {(v["Key"], v["VersionId"]) for v in listing} == {
        ("kept", locked["kept"]),
        ("held", locked["held"]),
    }

    # A key without a version id gets a delete marker; the locked version underneath stays.
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "kept"}]})
    assert r["Deleted"][0]["DeleteMarker"] is True
    assert locked["kept"] in version_ids(s3, bucket, "kept")


# --------------------------------------------------------------------------
# where RGW 16 differs from AWS


def test_rgw16_drops_lock_headers_of_multipart_uploads(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    until = now() + dt.timedelta(minutes=3)
    upload = s3.create_multipart_upload(
        Bucket=bucket,
        Key="big",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )
    part = s3.upload_part(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"abc"
    )
    version = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="big", VersionId=version)
    assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head, head
    with pytest.raises(ClientError) as missing:
        s3.get_object_retention(Bucket=bucket, Key="big", VersionId=version)
    assert error(missing) == (404, "ObjectLockConfigurationNotFoundError")

    # The way to lock a multipart upload on RGW 16: set the retention once it is complete.
    s3.put_object_retention(
        Bucket=bucket,
        Key="big",
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
    )
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="big", VersionId=version)
    assert error(refused) == (403, "AccessDenied")


def test_rgw16_copy_object_keeps_the_source_lock(s3_client: Any, s3_bucket: str) -> None:
    s3, bucket = s3_client, s3_bucket
    until = (now() + dt.timedelta(minutes=3)).replace(microsecond=0)
    source = s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=b"footage",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )["VersionId"]
    s3.copy_object(
        Bucket=bucket,
        Key="copy",
        CopySource={"Bucket": bucket, "Key": "src", "VersionId": source},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=now() + dt.timedelta(minutes=1),
        ObjectLockLegalHoldStatus="OFF",
    )
    copy = s3.head_object(Bucket=bucket, Key="copy")
    assert copy["ObjectLockMode"] == "COMPLIANCE"
    assert copy["ObjectLockRetainUntilDate"] == until
    assert copy["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="copy", VersionId=copy["VersionId"])
    assert error(refused) == (403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"footage"


# --------------------------------------------------------------------------
# the peer itself


def _alive(pid: int) -> bool:
    """Running, not a zombie (the daemons are reparented to init, which reaps them later)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _daemon_pids(directory: Path) -> list[int]:
    return [int((directory / "pids" / f"{n}.pid").read_text()) for n in ("mon", "osd", "rgw")]


def test_server_start_stop_and_stop_again(tmp_path: Path) -> None:
    with S3Server(memstore_bytes=64 * MiB) as server:
        assert server.start_seconds is not None and server.start_seconds < 60, server.stderr
        assert server.directory is not None
        pids = _daemon_pids(server.directory)
        assert all(_alive(p) for p in pids)
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="lifecycle")
        s3.put_object(Bucket="lifecycle", Key="k", Body=b"v")
        assert s3.get_object(Bucket="lifecycle", Key="k")["Body"].read() == b"v"

        # A full store refuses at once (quota: 3/4 of the 64 MiB store) instead of stalling.
        stored = len(b"v")  # every byte the user owns counts against the quota
        with pytest.raises(ClientError) as refused:
            for i in range(8):
                started = time.monotonic()
                s3.put_object(Bucket="lifecycle", Key=f"fill-{i}", Body=os.urandom(8 * MiB))
                stored += 8 * MiB
        assert error(refused) == (403, "QuotaExceeded")
        assert time.monotonic() - started < 10
        assert 40 * MiB < stored <= 48 * MiB
        directory = server.directory
    assert not server.running
    assert not any(_alive(p) for p in pids)
    assert not directory.exists()  # start() made it, stop() removed it
    server.stop()  # a second stop is a no-op
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--stop", str(tmp_path / "never-started")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr


def test_cluster_stops_when_its_owner_dies(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        res = subprocess.run(
            [sys.executable, str(SCRIPT), "--owner", str(owner.pid), str(tmp_path / "c")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0].startswith("S3_ENDPOINT=http://127.0.0.1:")
        pids = _daemon_pids(tmp_path / "c")
        assert all(_alive(p) for p in pids)
        owner.send_signal(signal.SIGKILL)  # no atexit, no cleanup of its own
        owner.wait()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids):
            assert time.monotonic() < deadline, "cluster outlived its owner by 30 s"
            time.sleep(0.1)
    finally:
        owner.kill()
        owner.wait()
        subprocess.run(
            [sys.executable, str(SCRIPT), "--stop", str(tmp_path / "c")], timeout=30, check=False
        )
