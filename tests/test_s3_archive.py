"""The s3 archive volume against a real Ceph RGW (tests/peers/s3.py), never a mock.

1. config: the s3 keys are validated in the model (a key of the other kind, http off loopback,
   one key file of two, a hot s3 volume: exit 2 naming the key);
2. identity: `volume init` creates the bucket (with Object Lock when configured) and writes
   the marker object; a bucket that is not ours is never written; an unreachable endpoint
   makes the volume unavailable, with the reason;
3. migration hot → s3 is crash-safe: a kill at every step boundary leaves each segment in
   exactly one committed place, its object's SHA-256 the catalog's; big segments go up in
   parts, at most max_mbit;
4. Object Lock: an archived segment is locked (COMPLIANCE) until its minimum retention ends
   and the server refuses to delete it; a hold sets a legal hold, its release clears it;
   the plan knows each lock (the catalog records it): `purge --dry-run` and `explain` show a
   deletion waiting for it, purge never tries it and says why it waits, and a lock the
   catalog did not know is still refused by the store (and learned); a legal hold the store
   could not take (the endpoint away) is retried by the daemon until it is on the object.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="the s3 volume needs boto3")

from tests.conftest import REPO, Session, run_cli, write_config
from tests.peers import s3_fixture
from tests.peers.s3 import S3Server
from tests.retention_seed import DAY_MS, seed

s3_server = s3_fixture.s3_server
s3_client = s3_fixture.s3_client

pytestmark = pytest.mark.timeout(300)

HOUR_MS = 3_600_000
MIGRATE_STEPS = [
    f"migrate.{s}" for s in ("intent", "copied", "switched", "locked", "source_deleted", "cleared")
]
HELPER = [sys.executable, "-m", "tests.crash_step"]


@pytest.fixture(scope="module")
def cli() -> Iterator[Session]:
    session = Session()
    yield session
    session.close()


def _keys(server: S3Server, root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    access, secret = root / "s3-access", root / "s3-secret"
    access.write_text(f"{server.access_key}\n")
    secret.write_text(f"{server.secret_key}\n")
    secret.chmod(0o600)
    return {"access_key_file": str(access), "secret_key_file": str(secret)}


def _s3_volume(server: S3Server, root: Path, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "vault",
        "kind": "s3",
        "role": "archive",
        "endpoint": server.endpoint,
        "bucket": bucket,
        **_keys(server, root),
        **extra,
    }


def _config(root: Path, s3: dict[str, Any], retention: str = "") -> Path:
    hot = {
        "name": "hot",
        "path": str(root / "hot"),
        "role": "hot",
        "reserve_free_bytes": 0,
        "reserve_free_percent": 0,
    }
    root.mkdir(parents=True, exist_ok=True)
    config = write_config(
        root, [{"name": "door", "url": "demo://", "enabled": False}], volumes=[hot, s3]
    )
    if retention:
        config.write_text(config.read_text() + "\n[retention]\n" + retention)
    return config


def _status(config: Path) -> dict[str, Any]:
    """`status --json` (the catalog made first by initialising the hot volume)."""
    assert run_cli(config, "volume", "init", "hot").returncode == 0
    result = run_cli(config, "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def _bucket_name() -> str:
    return f"v-{uuid.uuid4().hex[:20]}"


def _vault(status: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in status["volumes"] if v["name"] == "vault")


# --- 1. config ------------------------------------------------------------------------------

GOOD = 'kind = "s3"\nrole = "archive"\nendpoint = "https://s3.example.net"\nbucket = "b-1"\n'


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (GOOD + 'path = "/srv/x"\n', "path: not for kind = 's3'"),
        (GOOD.replace('"archive"', '"hot"'), "role: an s3 volume is an archive"),
        (GOOD.replace("https://s3.example.net", "http://s3.example.net"), "plain http only"),
        (GOOD.replace("https://s3.example.net", "https://k:s@s3.example.net"), "no user"),
        (GOOD.replace("https://s3.example.net", "ftp://s3.example.net"), "endpoint:"),
        (GOOD + 'access_key_file = "/k"\n', "give both key files, or neither"),
        (GOOD.replace('"b-1"', '"Bad_Bucket"'), "bucket"),
        (GOOD + 'prefix = "../x/"\n', "prefix"),
        (GOOD + 'object_lock = "always"\n', "object_lock"),
        (GOOD.replace('bucket = "b-1"\n', ""), "bucket: required"),
        ('path = "/srv/a"\nrole = "archive"\nbucket = "b-1"\n', "bucket: only for kind = 's3'"),
    ],
)
def test_bad_s3_volume_config_names_the_key(tmp_path: Path, volume: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f'[storage]\ncatalog = "{tmp_path}/c.sqlite"\n\n[[storage.volumes]]\nname = "hot"\n'
        f'path = "{tmp_path}/hot"\n\n[[storage.volumes]]\nname = "vault"\n{volume}'
    )
    result = run_cli(path, "check-config")
    assert result.returncode == 2, result
    assert "storage.volumes[1]" in result.stderr and message in result.stderr, result.stderr
    assert not (tmp_path / "c.sqlite").exists()


def test_an_unreadable_key_file_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[storage]\ncatalog = "{tmp_path}/c.sqlite"\n\n[[storage.volumes]]\nname = "hot"\n'
        f'path = "{tmp_path}/hot"\n\n[[storage.volumes]]\nname = "vault"\n{GOOD}'
        f'access_key_file = "{tmp_path}/nope"\nsecret_key_file = "{tmp_path}/nope2"\n'
    )
    result = run_cli(path, "check-config")
    assert result.returncode == 2, result
    assert "storage.volumes[1].access_key_file: cannot read it" in result.stderr, result.stderr


# --- 2. identity ----------------------------------------------------------------------------


@pytest.mark.parametrize("lock", ["off", "compliance"])
def test_volume_init_creates_the_bucket_and_writes_the_marker(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, lock: str
) -> None:
    bucket = _bucket_name()
    config = _config(tmp_path, _s3_volume(s3_server, tmp_path, bucket, object_lock=lock))
    before = _status(config)
    assert _vault(before)["state"] == "unavailable"
    assert "ccvault volume init vault" in _vault(before)["reason"]
    assert bucket not in [b["Name"] for b in s3_client.list_buckets()["Buckets"]]

    result = run_cli(config, "volume", "init", "vault")
    assert result.returncode == 0, result.stderr
    marker = json.loads(
        s3_client.get_object(Bucket=bucket, Key=".ccvault-volume.json")["Body"].read()
    )
    assert marker["name"] == "vault" and marker["volume_uuid"] in result.stdout
    locking = s3_client.get_object_lock_configuration(Bucket=bucket) if lock != "off" else None
    if locking is not None:
        assert locking["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    after = _status(config)
    assert _vault(after)["state"] == "available", _vault(after)
    assert _vault(after)["path"] == f"s3://{bucket}/"
    # Again: nothing changes (the same identity).
    again = run_cli(config, "volume", "init", "vault")
    assert again.returncode == 0 and marker["volume_uuid"] in again.stdout


def test_a_bucket_that_is_not_ours_is_never_written(
    tmp_path: Path, s3_server: S3Server, s3_client: Any
) -> None:
    # Someone else's objects under the prefix: init refuses, writes no marker.
    theirs = _bucket_name()
    s3_client.create_bucket(Bucket=theirs)
    s3_client.put_object(Bucket=theirs, Key="site/payroll.csv", Body=b"x")
    config = _config(tmp_path / "a", _s3_volume(s3_server, tmp_path, theirs, prefix="site/"))
    result = run_cli(config, "volume", "init", "vault")
    assert result.returncode == 4, result
    assert "holds objects that are not ccvault's" in result.stderr
    listed = s3_client.list_objects_v2(Bucket=theirs)["Contents"]
    assert [o["Key"] for o in listed] == ["site/payroll.csv"]

    # Object Lock asked of a bucket made without it: refused (S3 cannot add it later).
    plain = _bucket_name()
    s3_client.create_bucket(Bucket=plain)
    config = _config(
        tmp_path / "b", _s3_volume(s3_server, tmp_path, plain, object_lock="governance")
    )
    result = run_cli(config, "volume", "init", "vault")
    assert result.returncode == 4 and "has no Object Lock" in result.stderr, result
    assert s3_client.list_objects_v2(Bucket=plain).get("Contents") is None

    # Another catalog's volume: unavailable, and init refuses to take it over.
    ours = _bucket_name()
    first = _config(tmp_path / "c", _s3_volume(s3_server, tmp_path, ours))
    assert run_cli(first, "volume", "init", "vault").returncode == 0
    other = _config(tmp_path / "d", _s3_volume(s3_server, tmp_path, ours))
    status = _status(other)
    assert "belongs to another catalog" in _vault(status)["reason"], _vault(status)
    assert run_cli(other, "volume", "init", "vault").returncode == 4


def test_an_unreachable_endpoint_makes_the_volume_unavailable(
    tmp_path: Path, s3_server: S3Server
) -> None:
    volume = _s3_volume(s3_server, tmp_path, _bucket_name())
    volume["endpoint"] = "http://127.0.0.1:9"  # discard port: nothing listens
    config = _config(tmp_path, volume)
    status = _status(config)
    assert _vault(status)["state"] == "unavailable"
    assert "127.0.0.1:9" in _vault(status)["reason"], _vault(status)
    result = run_cli(config, "volume", "init", "vault")
    assert result.returncode != 0 and "ccvault: error: " in result.stderr, result


# --- 3. migration hot → s3, crash-safe ------------------------------------------------------


def _rows(config: Path) -> dict[int, tuple[str, str, str]]:
    import sqlite3

    conn = sqlite3.connect(config.parent / "catalog.sqlite")
    try:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT s.id, v.name, s.path, s.sha256 FROM segments s"
                " JOIN volumes v ON v.id = s.volume_id WHERE s.state = 'ok'"
            )
        }
    finally:
        conn.close()


def _intents(config: Path) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(config.parent / "catalog.sqlite")
    try:
        return conn.execute("SELECT kind, segment_id FROM intents").fetchall()
    finally:
        conn.close()


def _objects(s3: Any, bucket: str) -> dict[str, str]:
    """Every object version in the bucket but the marker → SHA-256 of its bytes."""
    out = {}
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        if v["Key"] == ".ccvault-volume.json":
            continue
        body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"]
        out[f"{v['Key']}@{v['VersionId']}"] = hashlib.sha256(body.read()).hexdigest()
    return out


def _one_place(config: Path, s3: Any, bucket: str) -> dict[int, tuple[str, str, str]]:
    """Exactly one committed copy of each segment: a row on hot has its file and no object;
    a row on the vault has one object version hashing to the row and no file on hot."""
    rows = _rows(config)
    assert _intents(config) == []
    hot = config.parent / "hot"
    objects = _objects(s3, bucket)
    keys = {k.split("@")[0] for k in objects}
    assert len(keys) == len(objects), f"more than one version: {sorted(objects)}"
    for seg_id, (volume, rel, sha) in rows.items():
        if volume == "hot":
            assert hashlib.sha256((hot / rel).read_bytes()).hexdigest() == sha, seg_id
        else:
            found = [h for k, h in objects.items() if k.startswith(f"{rel}@")]
            assert found == [sha], (seg_id, rel, found)
            assert not (hot / rel).exists(), f"segment {seg_id} left on hot too"
    on_vault = {rel for volume, rel, _sha in rows.values() if volume == "vault"}
    assert keys == on_vault, f"objects no row names: {sorted(keys - on_vault)}"
    return rows


@pytest.fixture(scope="module")
def migrate_template(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> tuple[Path, list[int]]:
    """hot + vault (s3), hot_days = 1: two segments 3 days old with activity (migrated by a
    pass) and one young one (kept on hot). Its catalog and hot files are copied per step;
    each copy gets its own bucket."""
    root = tmp_path_factory.mktemp("s3template")
    config = _config(root, _s3_volume(s3_server, root, "placeholder"), "hot_days = 1\n")
    now = int(time.time() * 1000)
    seeded = seed(
        config,
        [
            {"camera": "door", "start_ms": now - 3 * DAY_MS + i * HOUR_MS, "activity": True}
            for i in range(2)
        ]
        + [{"camera": "door", "start_ms": now - HOUR_MS}],
        tmp_path_factory.mktemp("cache"),
    )
    return root, [s.id for s in seeded]


def _store_copy(template: Path, dest: Path, bucket: str) -> Path:
    import shutil

    shutil.copytree(template, dest)
    config = dest / "ccvault.toml"
    text = config.read_text().replace(str(template), str(dest))
    config.write_text(text.replace('"placeholder"', f'"{bucket}"'))
    return config


@pytest.mark.parametrize("step", MIGRATE_STEPS)
def test_crash_at_every_migration_step_leaves_one_committed_copy(
    step: str, migrate_template, tmp_path: Path, s3_client: Any, cli: Session
) -> None:
    template, ids = migrate_template
    bucket = _bucket_name()
    config = _store_copy(template, tmp_path / "store", bucket)
    init = cli.run(config, "volume", "init", "vault")
    assert init.returncode == 0, init.stderr
    before = _rows(config)

    crashed = subprocess.run(
        [*HELPER, "crash", str(config), step], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert crashed.returncode == -9, (crashed.returncode, crashed.stderr[-2000:])
    left = set(_intents(config))
    assert left == (set() if step == "migrate.cleared" else {("migrate", i) for i in ids[:2]})

    result = cli.run(config, "reconcile", "--json")  # recovers the intents first
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    report = json.loads(result.stdout)
    assert report["foreign"] == [] and report["missing"] == [], report
    rows = _one_place(config, s3_client, bucket)
    switched = step.removeprefix("migrate.") in ("switched", "locked", "source_deleted", "cleared")
    for seg_id in ids[:2]:
        assert rows[seg_id][0] == ("vault" if switched else "hot")
        assert rows[seg_id][2] == before[seg_id][2]
    assert rows[ids[2]] == before[ids[2]]

    # The next pass finishes the work.
    done = cli.json(config, "purge")
    assert done["failed"] == 0, done
    rows = _one_place(config, s3_client, bucket)
    assert [rows[i][0] for i in ids] == ["vault", "vault", "hot"]
    migrated = [
        s["id"]
        for r in cli.json(config, "audit", "list", "--action", "migrate")
        for s in r["details"]["segments"]
    ]
    assert sorted(migrated) == sorted(ids[:2])  # on record once: none lost, none doubled


def test_big_segments_go_up_in_parts_paced_to_max_mbit(
    tmp_path: Path, s3_server: S3Server, s3_client: Any
) -> None:
    from ccvault.config.model import VolumeConfig
    from ccvault.storage.objects import PART_BYTES, bucket_of

    name = _bucket_name()
    s3_client.create_bucket(Bucket=name)
    cfg = VolumeConfig.model_validate(_s3_volume(s3_server, tmp_path, name, max_mbit=80.0))
    bucket = bucket_of(cfg)
    src = tmp_path / "big.mp4"
    data = uuid.uuid4().bytes * ((PART_BYTES + 4 * (1 << 20)) // 16)
    src.write_bytes(data)
    began = time.monotonic()
    sent = bucket.upload(src, "door/big.mp4")
    took = time.monotonic() - began
    assert sent.sha256 == hashlib.sha256(data).hexdigest() and sent.bytes == len(data)
    assert bucket.sha256("door/big.mp4") == (sent.sha256, len(data))
    assert s3_client.head_object(Bucket=name, Key="door/big.mp4")["ETag"].endswith('-2"')
    # 20 MiB at 80 Mbit/s (10 MB/s) cannot take less than ~2.1 s, however idle the machine.
    assert took >= len(data) / 10_000_000 * 0.95, took


def test_archived_segments_are_locked_and_held_and_purge_waits(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    import datetime as dt

    from botocore.exceptions import ClientError

    bucket = _bucket_name()
    root = tmp_path / "store"
    config = _config(
        root, _s3_volume(s3_server, root, bucket, object_lock="compliance"), "hot_days = 1\n"
    )
    now = int(time.time() * 1000)
    seeded = seed(
        config,
        [
            {"camera": "door", "start_ms": now - 3 * DAY_MS + i * HOUR_MS, "activity": True}
            for i in range(2)
        ],
        tmp_path / "cache",
    )
    assert cli.run(config, "volume", "init", "vault").returncode == 0
    assert cli.json(config, "purge")["migrated"] == 2
    rows = _one_place(config, s3_client, bucket)
    for s in seeded:
        key = rows[s.id][1]
        got = s3_client.get_object_retention(Bucket=bucket, Key=key)["Retention"]
        assert got["Mode"] == "COMPLIANCE"
        want = dt.datetime.fromtimestamp((s.end_ms + 7 * DAY_MS) / 1000, dt.UTC)
        assert abs((got["RetainUntilDate"] - want).total_seconds()) < 1.5, (got, want)
        version = s3_client.head_object(Bucket=bucket, Key=key)["VersionId"]
        with pytest.raises(ClientError) as refused:  # the store itself refuses, even with bypass
            s3_client.delete_object(
                Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

    # A hold on the first segment: a legal hold on its object; released: cleared.
    first, second = (rows[s.id][1] for s in seeded)
    hold = _hold(cli, config, seeded[0], "--reason", "incident 7")
    assert hold.returncode == 0, hold.stderr
    legal = s3_client.get_object_legal_hold
    assert legal(Bucket=bucket, Key=first)["LegalHold"]["Status"] == "ON"
    assert _legal_status(s3_client, bucket, second) != "ON"
    released = cli.run(config, "hold", "release", hold.stdout.strip(), "--reason", "case closed")
    assert released.returncode == 0, released.stderr
    assert legal(Bucket=bucket, Key=first)["LegalHold"]["Status"] == "OFF"

    # A hold that ends by its own date is released by no one: the next pass takes the legal
    # hold off (else the object would stay undeletable past the privacy maximum).
    until_ms = int(time.time() * 1000) + 2000
    dated = _hold(cli, config, seeded[1], "--until", _utc(until_ms), "--reason", "incident 8")
    assert dated.returncode == 0, dated.stderr
    assert legal(Bucket=bucket, Key=second)["LegalHold"]["Status"] == "ON"
    while time.time() * 1000 <= until_ms:
        time.sleep(0.2)
    assert cli.run(config, "purge").returncode == 0
    assert legal(Bucket=bucket, Key=second)["LegalHold"]["Status"] == "OFF"

    # Policy shortened below the lock (and a quota the camera is over): purge wants them
    # gone, but waits for the lock's date — each once, whichever rules want it.
    config.write_text(
        config.read_text().replace(
            "hot_days = 1\n",
            "hot_days = 1\nmin_days = 1\ncontinuous_days = 1.5\nmotion_days = 2\nmax_days = 2\n"
            "max_bytes = 1000\n",
        )
    )
    # The plan itself knows: the dry run shows each deletion waiting for its lock, not a delete.
    _plan_waits_for_locks(config, cli, seeded)
    result = cli.run(config, "purge", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (json.loads(result.stdout)["deleted"], json.loads(result.stdout)["waiting"]) == (0, 2)
    waiting = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"purge.waiting"' in line
    ]
    assert sorted(w["segment_id"] for w in waiting) == sorted(s.id for s in seeded), waiting
    assert all("S3 Object Lock (compliance) until" in w["reason"] for w in waiting)
    assert _one_place(config, s3_client, bucket) == rows

    # A lock the catalog does not know (an object archived before it recorded locks): the plan
    # says delete, the store still refuses, purge waits and learns the lock for the next plan.
    _sql(config, "DELETE FROM object_locks")
    actions = cli.json(config, "purge", "--dry-run")["actions"]
    assert {a["action"] for a in actions} == {"delete"}, actions
    result = cli.run(config, "purge", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (json.loads(result.stdout)["deleted"], json.loads(result.stdout)["waiting"]) == (0, 2)
    assert _one_place(config, s3_client, bucket) == rows
    _plan_waits_for_locks(config, cli, seeded)


def _hold(cli: Session, config: Path, segment: Any, *args: str) -> Any:
    """`ccvault hold add` over one seeded segment of door."""
    span = ("--from", _utc(segment.start_ms), "--to", _utc(segment.end_ms))
    return cli.run(config, "hold", "add", "--camera", "door", *span, *args)


def _plan_waits_for_locks(config: Path, cli: Session, seeded: list) -> None:
    """`purge --dry-run` (JSON and text) and `explain` show each archived segment's deletion
    waiting for its object's lock: until its minimum retention (7 days) ends (to the second:
    a lock learned from the store has its precision)."""
    from zoneinfo import ZoneInfo

    from ccvault.timefmt import local_text, utc_text

    actions = {a["segment_id"]: a for a in cli.json(config, "purge", "--dry-run")["actions"]}
    for s in seeded:
        a = actions[s.id]
        got = (a["action"], a["rule"], a["waits_for"], a["lock_mode"])
        assert got == ("wait", "max_days", "object_lock", "compliance"), a
        assert abs(a["until_ms"] - (s.end_ms + 7 * DAY_MS)) < 1000, a
    assert {a["action"] for a in actions.values()} == {"wait"}, actions
    text = cli.run(config, "purge", "--dry-run")
    assert text.returncode == 0, text.stderr[-2000:]
    assert text.stdout.count("wait (object lock, compliance)") == 2, text.stdout
    assert "wait: 2 segments" in text.stdout and "delete:" not in text.stdout, text.stdout

    first = seeded[0]
    at = _utc(first.start_ms + 1000)
    until = actions[first.id]["until_ms"]
    explained = cli.json(config, "explain", "--camera", "door", "--at", at)
    got = (explained["segment_id"], explained["action"], explained["waits_for"])
    assert got == (first.id, "wait", "object_lock") and explained["until_ms"] == until, explained
    words = cli.run(config, "explain", "--camera", "door", "--at", at)
    assert words.returncode == 0, words.stderr[-2000:]
    expected = (
        f"kept until {local_text(until, ZoneInfo('UTC'))}: object locked (compliance) until "
        f"{utc_text(until)}; then deleted by the next retention pass (rule: max_days)"
    )
    assert expected in words.stdout, words.stdout


def _sql(config: Path, statement: str) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(config.parent / "catalog.sqlite")
    try:
        with conn:
            return conn.execute(statement).fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_legal_hold_the_store_missed_is_retried_until_it_is_on_the_object(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session, daemon_factory: Any
) -> None:
    """The endpoint goes away (a gate in front of the session's RGW closes) just as a hold is
    added: the legal hold fails, stays pending in the catalog, the volume is unavailable; once
    the gateway answers again the daemon sets it, and a release missed the same way is
    retried too."""
    from tests.peers.gate import Gate

    port = int((s3_server.endpoint or "").rsplit(":", 1)[1])
    gate = Gate(port)
    try:
        bucket = _bucket_name()
        root = tmp_path / "store"
        volume = _s3_volume(s3_server, root, bucket, object_lock="compliance")
        volume["endpoint"] = gate.url
        config = _config(root, volume, "hot_days = 1\n")
        config.write_text(config.read_text() + "\n[alerts]\ncheck_seconds = 1\n")
        now = int(time.time() * 1000)
        [seg] = seed(
            config, [{"camera": "door", "start_ms": now - 3 * DAY_MS, "activity": True}], root / "c"
        )
        assert cli.run(config, "volume", "init", "vault").returncode == 0
        assert cli.json(config, "purge")["migrated"] == 1
        key = _rows(config)[seg.id][1]
        daemon = daemon_factory(config)

        def hold(*args: str) -> subprocess.CompletedProcess[str]:
            done = cli.run(config, "hold", *args)
            assert done.returncode == 0, done.stderr[-2000:]  # the catalog's hold is the truth
            return done

        gate.close()
        added = hold(
            "add", "--camera", "door", "--from", _utc(seg.start_ms), "--to", _utc(seg.end_ms),
            "--reason", "incident 9",
        )  # fmt: skip
        assert '"s3.legal_hold_failed"' in added.stderr, added.stderr[-2000:]
        assert _legal_status(s3_client, bucket, key) != "ON"
        assert _sql(config, "SELECT hold_wanted, legal_hold FROM object_locks") == [(1, 0)]
        fired = daemon.wait_event("alert.fired", timeout=60, alert="volume_unavailable")
        assert fired["volume"] == "vault", fired
        assert cli.json(config, "status")["retention"]["legal_holds_pending"] == 1
        shown = cli.run(config, "status")
        assert "1 legal hold change(s) not taken by the object store yet" in shown.stdout

        gate.open()
        daemon.wait_event("s3.legal_hold", timeout=120, segment_id=seg.id, on=True)
        assert _legal_status(s3_client, bucket, key) == "ON"
        assert _sql(config, "SELECT hold_wanted, legal_hold FROM object_locks") == [(None, 1)]
        assert cli.json(config, "status")["retention"]["legal_holds_pending"] == 0

        # Released while the endpoint is away: the object stays under legal hold (the plan
        # knows: its deletion would wait) until the daemon's retry clears it.
        gate.close()
        hold("release", added.stdout.strip(), "--reason", "case closed")
        assert _legal_status(s3_client, bucket, key) == "ON"
        assert _sql(config, "SELECT hold_wanted, legal_hold FROM object_locks") == [(0, 1)]
        gate.open()
        daemon.wait_event("s3.legal_hold", timeout=120, segment_id=seg.id, on=False)
        assert _legal_status(s3_client, bucket, key) == "OFF"
        assert _sql(config, "SELECT hold_wanted, legal_hold FROM object_locks") == [(None, 0)]
        assert daemon.stop() == 0
    finally:
        gate.close()


def _utc(ms: int) -> str:
    from ccvault.timefmt import utc_text

    return utc_text(ms)


def _legal_status(s3: Any, bucket: str, key: str) -> str:
    from botocore.exceptions import ClientError

    try:
        return s3.get_object_legal_hold(Bucket=bucket, Key=key)["LegalHold"]["Status"]
    except ClientError:
        return "none"


# --- 5. retention on s3: the privacy maximum and quotas, intent first -------------------------

PRIVACY = "hot_days = 1\nmin_days = 1\ncontinuous_days = 1.5\nmotion_days = 2\nmax_days = 2\n"


def _archived(root: Path, s3_server: S3Server, cli: Session, **extra: Any) -> tuple[Path, str]:
    """A store whose two 3-day-old segments were migrated to an unlocked vault, plus a young
    one left on hot."""
    bucket = _bucket_name()
    config = _config(root, _s3_volume(s3_server, root, bucket, **extra), "hot_days = 1\n")
    now = int(time.time() * 1000)
    seed(
        config,
        [
            {"camera": "door", "start_ms": now - 3 * DAY_MS + i * HOUR_MS, "activity": True}
            for i in range(2)
        ]
        + [{"camera": "door", "start_ms": now - HOUR_MS}],
        root / "cache",
    )
    assert cli.run(config, "volume", "init", "vault").returncode == 0
    assert cli.json(config, "purge")["migrated"] == 2
    return config, bucket


@pytest.mark.parametrize("step", ["delete.intent", "delete.unlinked", "delete.cleared"])
def test_privacy_maximum_deletes_from_the_bucket_after_a_crash_too(
    step: str, tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    config, bucket = _archived(tmp_path / "store", s3_server, cli)
    rows = _one_place(config, s3_client, bucket)
    archived = sorted(i for i, r in rows.items() if r[0] == "vault")
    config.write_text(config.read_text().replace("hot_days = 1\n", PRIVACY))

    crashed = subprocess.run(
        [*HELPER, "crash", str(config), step], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert crashed.returncode == -9, (crashed.returncode, crashed.stderr[-2000:])
    result = cli.run(config, "reconcile", "--json")  # finishes the deletes first
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    left = _one_place(config, s3_client, bucket)
    assert [i for i in archived if i in left] == []
    assert s3_client.list_object_versions(Bucket=bucket).get("DeleteMarkers") is None
    keys = [v["Key"] for v in s3_client.list_object_versions(Bucket=bucket).get("Versions", [])]
    assert keys == [".ccvault-volume.json"], keys
    purged = [
        s["id"]
        for r in cli.json(config, "audit", "list", "--action", "purge")
        for s in r["details"]["segments"]
    ]
    assert sorted(purged) == archived  # each deletion explained, once


def test_an_s3_volume_quota_deletes_its_oldest_footage(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    config, bucket = _archived(tmp_path / "store", s3_server, cli)
    rows = _one_place(config, s3_client, bucket)
    archived = sorted(i for i, r in rows.items() if r[0] == "vault")
    sizes = {v["Key"]: v["Size"] for v in s3_client.list_object_versions(Bucket=bucket)["Versions"]}
    newest = rows[archived[-1]][1]
    text = config.read_text().replace(
        'name = "vault"', f'name = "vault"\nmax_bytes = {sizes[newest]}'
    )
    config.write_text(text)
    done = cli.json(config, "purge")
    assert done["deleted"] == 1, done
    left = _one_place(config, s3_client, bucket)
    assert archived[0] not in left and left[archived[-1]][0] == "vault"


# --- 6. reads: playback of archived footage, ranged and streamed ------------------------------


def test_archived_segments_play_with_ranges_stills_and_clips(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    from tests.api_peer import serve

    config, bucket = _archived(tmp_path / "store", s3_server, cli)
    rows = _one_place(config, s3_client, bucket)
    seg_id = min(i for i, r in rows.items() if r[0] == "vault")
    key, sha = rows[seg_id][1], rows[seg_id][2]
    whole = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(whole).hexdigest() == sha
    segments = cli.json(
        config, "segments", "--camera", "door", "--from", "2000-01-01", "--to", "2100-01-01"
    )
    seg = next(s for s in segments if s["id"] == seg_id)
    with serve(config) as api, api.client("viewer") as http:
        full = http.get(f"/api/segments/{seg_id}/file")
        assert full.status_code == 200, full.text
        assert full.content == whole and full.headers["etag"] == f'"{sha}"'
        part = http.get(f"/api/segments/{seg_id}/file", headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.content == whole[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(whole)}"
        still = http.get("/api/cameras/door/still.jpg", params={"at": seg["start"]})
        assert still.status_code == 200 and still.content[:2] == b"\xff\xd8", still.text
        clip = http.get(
            "/api/clip.mp4", params={"camera": "door", "from": seg["start"], "to": seg["end"]}
        )
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp", clip.text
    assert not list((config.parent / "state").glob(".clips/*.s3.mp4"))
    out = config.parent / "exports" / "one.mp4"
    copied = cli.run(config, "segment-file", str(seg_id), "--out", str(out))
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert out.read_bytes() == whole


def test_an_export_copies_archived_segments_with_verification(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    config, bucket = _archived(tmp_path / "store", s3_server, cli)
    rows = _one_place(config, s3_client, bucket)
    archived = sorted(i for i, r in rows.items() if r[0] == "vault")
    segments = cli.json(
        config, "segments", "--camera", "door", "--from", "2000-01-01", "--to", "2100-01-01"
    )
    span = [s for s in segments if s["id"] in archived]
    out = config.parent / "exports" / "bundle"
    exported = cli.run(
        config, "export", "--camera", "door", "--from", span[0]["start"], "--to",
        span[-1]["end"], "--out", str(out), "--reason", "incident 12",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    copies = {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.mp4")}
    assert {rows[i][2] for i in archived} <= copies
    verified = cli.run(config, "verify-export", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert not (config.parent / "state" / ".peer-footage").exists() or not list(
        (config.parent / "state" / ".peer-footage").rglob("*.mp4")
    )

    # An archived object that is not the footage any more: no bundle of it.
    key = rows[archived[0]][1]
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"not the footage")
    refused = cli.run(
        config, "export", "--camera", "door", "--from", span[0]["start"], "--to",
        span[0]["end"], "--out", str(out) + "2", "--reason", "incident 13",
    )  # fmt: skip
    assert refused.returncode == 1, refused
    assert "does not match its catalogued SHA-256" in refused.stderr
    assert not Path(str(out) + "2").exists()


def test_verify_rehashes_archived_objects_and_finds_a_changed_one(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    config, bucket = _archived(tmp_path / "store", s3_server, cli)
    rows = _one_place(config, s3_client, bucket)
    archived = sorted(i for i, r in rows.items() if r[0] == "vault")
    clean = cli.run(config, "verify", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr[-2000:]
    assert json.loads(clean.stdout)["ok"] == len(rows)
    s3_client.put_object(Bucket=bucket, Key=rows[archived[0]][1], Body=b"tampered")
    s3_client.delete_object(Bucket=bucket, Key=rows[archived[1]][1])
    found = cli.run(config, "verify", "--json")
    assert found.returncode == 1, found
    report = json.loads(found.stdout)
    assert report["ok"] == len(rows) - 2, report
    assert [s["id"] for s in report["corrupt"]] == [archived[0]], report
    assert [s["id"] for s in report["missing"]] == [archived[1]], report
    segs = cli.json(
        config, "segments", "--camera", "door", "--from", "2000-01-01", "--to", "2100-01-01"
    )
    assert next(s for s in segs if s["id"] == archived[0])["integrity"] == "corrupt"


def test_a_segment_that_changed_on_disk_is_never_archived(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, cli: Session
) -> None:
    root = tmp_path / "store"
    bucket = _bucket_name()
    config = _config(root, _s3_volume(s3_server, root, bucket), "hot_days = 1\n")
    now = int(time.time() * 1000)
    seeded = seed(
        config,
        [
            {"camera": "door", "start_ms": now - 3 * DAY_MS + i * HOUR_MS, "activity": True}
            for i in range(2)
        ],
        root / "cache",
    )
    assert cli.run(config, "volume", "init", "vault").returncode == 0
    with open(seeded[0].path, "r+b") as f:  # one byte flipped after it was catalogued
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    done = cli.json(config, "purge")
    assert (done["migrated"], done["failed"]) == (1, 1), done
    rows = _rows(config)
    assert rows[seeded[0].id][0] == "hot" and seeded[0].path.is_file()
    assert rows[seeded[1].id][0] == "vault"
    keys = {v["Key"] for v in s3_client.list_object_versions(Bucket=bucket).get("Versions", [])}
    assert keys == {".ccvault-volume.json", rows[seeded[1].id][1]}, keys
    assert _intents(config) == []


def test_volume_unavailable_fires_when_the_endpoint_dies(
    tmp_path: Path, daemon_factory: Any
) -> None:
    """A cluster of this test's own (the session's must live on): the daemon runs with its
    vault available, the cluster stops, and the alert fires naming the volume."""
    own = S3Server().start(tmp_path / "cluster")
    try:
        root = tmp_path / "store"
        config = _config(root, _s3_volume(own, root, _bucket_name()))
        config.write_text(config.read_text() + "\n[alerts]\ncheck_seconds = 1\n")
        assert run_cli(config, "volume", "init", "vault").returncode == 0
        daemon = daemon_factory(config)
        assert daemon.count("alert.fired", alert="volume_unavailable") == 0
        own.stop()
        fired = daemon.wait_event("alert.fired", timeout=60, alert="volume_unavailable")
        assert fired["volume"] == "vault", fired
        assert daemon.stop() == 0
    finally:
        own.stop()
