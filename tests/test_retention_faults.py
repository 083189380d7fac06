"""Retention under faults: a crash at every step boundary of purge, migration and thinning,
`kill -9` of the daemon in the middle of its passes, and a volume whose identity file is gone.

What must hold after any of them (docs: ccvault/retention/executor.py): once intent recovery
has run, every catalogued segment has exactly one valid file (its SHA-256 is the row's), no
footage file on a volume is uncatalogued, no intent is left, held and young footage is
untouched byte for byte, reconcile has nothing to repair, and the next pass leaves nothing
expired behind while the audit chain stays intact.

The CLI commands after a crash run in one warm `ccvault` session process (tests/crash_step.py),
each through `ccvault.cli.main` with its own fresh App, as a new process would: it saves the
interpreter start per command and keeps the file inside its time budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccvault.timefmt import utc_text
from tests.conftest import REPO, Daemon, Session, wait_for, write_config
from tests.retention_seed import DAY_MS, seed

HOUR_MS = 3_600_000
MIN_MS = 60_000
IDENTITY = ".ccvault-volume.json"
STEPS = [
    f"{kind}.{step}"
    for kind, steps in (
        ("delete", ("intent", "unlinked", "cleared")),
        ("migrate", ("intent", "copied", "switched", "locked", "source_deleted", "cleared")),
        ("thin", ("intent", "copied", "switched", "locked", "source_deleted", "cleared")),
    )
    for step in steps
]
HELPER = [sys.executable, "-m", "tests.crash_step"]


# --- Helpers: a warm CLI session (tests/conftest.py), the store on disk, the invariants -----


@pytest.fixture(scope="module")
def cli() -> Iterator[Session]:
    session = Session()
    yield session
    session.close()


def _config(
    root: Path, retention: str, volumes: list[dict[str, Any]], cameras: tuple[str, ...] = ("door",)
) -> Path:
    config = write_config(
        root, [{"name": c, "url": "demo://", "enabled": False} for c in cameras], volumes=volumes
    )
    config.write_text(config.read_text() + "\n[retention]\n" + retention)
    return config


def _volume(root: Path, name: str, role: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "path": str(root / name),
        "role": role,
        "reserve_free_bytes": 0,
        "reserve_free_percent": 0,
        **extra,
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Row:
    volume: str
    path: str
    sha256: str
    state: str


def _rows(catalog: Path) -> dict[int, Row]:
    with contextlib.closing(sqlite3.connect(catalog)) as conn:
        return {
            r[0]: Row(*r[1:])
            for r in conn.execute(
                "SELECT s.id, v.name, s.path, s.sha256, s.state FROM segments s"
                " JOIN volumes v ON v.id = s.volume_id"
            )
        }


def _intents(catalog: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(catalog)) as conn:
        return conn.execute("SELECT * FROM intents").fetchall()


def _under_way(catalog: Path) -> bool:
    """An intent row is there: a retention operation has begun and not finished."""
    try:
        return bool(_intents(catalog))
    except sqlite3.OperationalError:  # busy: ask again
        return False


def _footage_files(root: Path) -> set[str]:
    """Footage files on a volume, as reconcile sees them: no identity, dot files, quarantine."""
    out = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if (
            path.is_file()
            and rel.parts[0] != "quarantine"
            and not any(part.startswith(".") for part in rel.parts)
        ):
            out.add(str(rel))
    return out


def _check_store(catalog: Path, roots: dict[str, Path]) -> dict[int, Row]:
    """Exactly one valid, catalogued copy of everything: every row's file exists and hashes
    to the row; no footage file is uncatalogued; no intent is left. Returns the rows."""
    rows = _rows(catalog)
    assert _intents(catalog) == []
    for seg_id, row in rows.items():
        assert row.state == "ok", (seg_id, row)
        path = roots[row.volume] / row.path
        assert path.is_file(), f"segment {seg_id}: {path} is gone"
        assert _sha(path) == row.sha256, f"segment {seg_id}: {path} does not match its row"
    catalogued = {(r.volume, r.path) for r in rows.values()}
    for name, root in roots.items():
        stray = {(name, f) for f in _footage_files(root)} - catalogued
        assert not stray, f"uncatalogued files: {sorted(stray)}"
    return rows


def _reconcile_clean(
    cli: Session, config: Path, unavailable: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`ccvault reconcile --json` finds nothing to repair (and only the `unavailable` volumes
    unavailable, which makes it exit 1); returns the intents it recovered first (its
    `intent.recovered` log events)."""
    result = cli.run(config, "reconcile", "--json")
    assert result.returncode == (1 if unavailable else 0), (result.stdout, result.stderr[-3000:])
    report = json.loads(result.stdout)
    assert [v["volume"] for v in report.pop("unavailable")] == list(unavailable), report
    assert {k: v for k, v in report.items() if k != "ingested"} == {
        "adopted": [],
        "found": [],
        "duplicates": [],
        "quarantined": [],
        "missing": [],
        "foreign": [],
    }, report
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e["event"] == "intent.recovered"]


def _audited(cli: Session, config: Path, action: str) -> list[int]:
    """Segment ids in the audit records of an action, one entry per mention."""
    return [
        s["id"]
        for r in cli.json(config, "audit", "list", "--action", action)
        for s in r["details"]["segments"]
    ]


def _hold(cli: Session, config: Path, camera: str, from_ms: int, to_ms: int) -> int:
    result = cli.run(
        config,
        "hold",
        "add",
        "--camera",
        camera,
        "--from",
        utc_text(from_ms),
        "--to",
        utc_text(to_ms),
        "--reason",
        "x",
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


# --- 1. A crash at every step boundary ------------------------------------------------------


@dataclass(frozen=True)
class Original:
    id: int
    kind: str  # expired | held | thin | migrate | young
    path: str  # relative to the hot volume
    sha256: str


@pytest.fixture(scope="module")
def crash_template(
    tmp_path_factory: pytest.TempPathFactory, cli: Session
) -> tuple[Path, list[Original]]:
    """One seeded store, copied for every step: hot + archive, `hot_days = 1`,
    `thin_after_days = 1`; a pass deletes 4 expired idle segments, thins 2 idle ones 3 days
    old and migrates 2 with activity 3 days old, and keeps a held expired one and 2 young ones.
    """
    root = tmp_path_factory.mktemp("template")
    config = _config(
        root,
        "hot_days = 1\nthin_after_days = 1\n",
        [_volume(root, "hot", "hot"), _volume(root, "archive", "archive")],
    )
    now = int(time.time() * 1000)
    plan = (
        [("expired", now - 20 * DAY_MS + i * HOUR_MS, False) for i in range(4)]
        + [("held", now - 20 * DAY_MS + 5 * HOUR_MS, False)]
        + [("thin", now - 3 * DAY_MS + i * HOUR_MS, False) for i in range(2)]
        + [("migrate", now - 3 * DAY_MS + (3 + i) * HOUR_MS, True) for i in range(2)]
        + [("young", now - (2 - i) * HOUR_MS, False) for i in range(2)]
    )
    seeded = seed(
        config,
        [
            {"camera": "door", "start_ms": start, "activity": activity}
            for _kind, start, activity in plan
        ],
        tmp_path_factory.mktemp("cache"),
    )
    held = seeded[4]
    _hold(cli, config, "door", held.start_ms - MIN_MS, held.end_ms + MIN_MS)
    originals = [
        Original(s.id, kind, str(s.path.relative_to(root / "hot")), _sha(s.path))
        for (kind, _start, _activity), s in zip(plan, seeded, strict=True)
    ]
    return root, originals


def _copy_store(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    config = dest / "ccvault.toml"
    config.write_text(config.read_text().replace(str(template), str(dest)))
    return config


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_boundary(
    step: str, crash_template, tmp_path: Path, cli: Session
) -> None:
    template, originals = crash_template
    root = tmp_path / "store"
    config = _copy_store(template, root)
    catalog = root / "catalog.sqlite"
    roots = {"hot": root / "hot", "archive": root / "archive"}
    by_kind: dict[str, list[Original]] = {}
    for o in originals:
        by_kind.setdefault(o.kind, []).append(o)

    crashed = subprocess.run(
        [*HELPER, "crash", str(config), step], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert crashed.returncode == -9, (
        crashed.returncode,
        crashed.stdout[-2000:],
        crashed.stderr[-2000:],
    )
    kind, _, at = step.partition(".")
    switched = at in ("switched", "locked", "source_deleted", "cleared")
    # Until `.cleared`, the crash leaves the batch's intents for start-up to follow.
    left = {(r[1], r[2]) for r in _intents(catalog)}
    assert {k for k, _i in left} == (set() if at == "cleared" else {kind}), left

    # Restart: reconcile recovers the intents first (a delete, and a switched copy, are
    # finished; an unswitched copy is rolled back), then finds nothing to repair.
    recovered = _reconcile_clean(cli, config)
    assert {(e["kind"], e["segment_id"]) for e in recovered} == left
    assert {e["outcome"] for e in recovered} <= {
        "finished" if kind == "delete" or switched else "rolled_back"
    }, recovered
    assert _reconcile_clean(cli, config) == []
    rows = _check_store(catalog, roots)

    for o in by_kind["expired"]:  # the delete batch runs first: its rows went at its intent
        assert o.id not in rows and not (roots["hot"] / o.path).exists()
    for o in by_kind["held"] + by_kind["young"]:
        assert rows[o.id] == Row("hot", o.path, o.sha256, "ok")
    for o in by_kind["thin"]:  # thinned before the migration batch, which then takes them
        row = rows[o.id]
        if kind == "migrate" or (kind == "thin" and switched):
            moved = kind == "migrate" and switched
            assert (row.volume, row.path) == (
                "archive" if moved else "hot",
                o.path.removesuffix(".mp4") + "-k.mp4",
            )
            assert row.sha256 != o.sha256 and not (roots["hot"] / o.path).exists()
        else:
            assert row == Row("hot", o.path, o.sha256, "ok")
    for o in by_kind["migrate"]:
        moved = kind == "migrate" and switched
        assert rows[o.id] == Row("archive" if moved else "hot", o.path, o.sha256, "ok")

    # The next pass finishes the work; nothing expired survives; the audit chain holds.
    done = cli.json(config, "purge")
    assert done["failed"] == 0, done
    plan = cli.json(config, "purge", "--dry-run")
    assert [a for a in plan["actions"] if a["action"] == "delete"] == []
    rows = _check_store(catalog, roots)
    for o in by_kind["expired"]:
        assert o.id not in rows
    for o in by_kind["held"] + by_kind["young"]:
        assert rows[o.id] == Row("hot", o.path, o.sha256, "ok")
        assert _sha(roots["hot"] / o.path) == o.sha256
    for o in by_kind["thin"]:
        assert rows[o.id].path.endswith("-k.mp4") and rows[o.id].sha256 != o.sha256
    for o in by_kind["migrate"]:
        assert rows[o.id] == Row("archive", o.path, o.sha256, "ok")
    # Each purge, thin and migration is on record exactly once: none lost, none doubled.
    assert sorted(_audited(cli, config, "purge")) == sorted(o.id for o in by_kind["expired"])
    assert sorted(_audited(cli, config, "thin")) == sorted(o.id for o in by_kind["thin"])
    migrated = _audited(cli, config, "migrate")
    assert sorted(set(migrated)) == sorted(migrated)  # thinned ones may have moved too
    assert set(migrated) >= {o.id for o in by_kind["migrate"]}
    verify = cli.run(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_crash_steps_are_every_checkpoint_of_the_executor() -> None:
    """STEPS above is the executor's own list: a new step boundary must get its crash test."""
    from ccvault.retention import executor

    calls = re.findall(
        r'self\.checkpoint\(f?"(\{kind\}|\w+)\.(\w+)"\)', Path(executor.__file__).read_text()
    )
    found = {
        f"{kind}.{step}"
        for prefix, step in calls
        for kind in (("migrate", "thin") if prefix == "{kind}" else (prefix,))
    }
    assert found == set(STEPS) and len(STEPS) == 15


def test_purge_before_recovery_does_not_resurrect_a_thinned_original(
    crash_template, tmp_path: Path, cli: Session
) -> None:
    """A crash right after the thinned copy was switched to; then, before any start-up
    recovery, a `ccvault purge` (cron, an operator) migrates the thinned segment on."""
    template, originals = crash_template
    root = tmp_path / "store"
    config = _copy_store(template, root)
    roots = {"hot": root / "hot", "archive": root / "archive"}
    crashed = subprocess.run(
        [*HELPER, "crash", str(config), "thin.switched"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert cli.json(config, "purge")["failed"] == 0
    _reconcile_clean(cli, config)  # fails: both thinned originals come back as "adopted"
    rows = _check_store(root / "catalog.sqlite", roots)
    for o in originals:
        if o.kind == "thin":
            assert not (roots["hot"] / o.path).exists() and o.id in rows


# --- 2. kill -9 of the daemon in the middle of its retention passes -------------------------

# The real daemon (tests/crash_step.py daemon) with its first pass this soon after start
# instead of daemon.RETENTION_FIRST_S (15 s): the only change, so four starts fit the budget.
FIRST_PASS_S = 0.5


class FastDaemon(Daemon):
    def start(self) -> FastDaemon:
        self.proc = subprocess.Popen(
            [*HELPER, "daemon", str(self.config), str(FIRST_PASS_S)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        self._collector = threading.Thread(target=self._collect, args=(self.proc,), daemon=True)
        self._collector.start()
        self.wait_event("daemon.ready", timeout=60)
        return self


@pytest.fixture
def fast_daemons() -> Iterator[list[FastDaemon]]:
    started: list[FastDaemon] = []
    yield started
    for daemon in started:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.mark.slow
def test_kill_9_during_retention_passes(
    tmp_path: Path, cli: Session, fast_daemons: list[FastDaemon]
) -> None:
    volumes = [_volume(tmp_path, "hot", "hot"), _volume(tmp_path, "archive", "archive")]
    config = _config(
        tmp_path,
        "continuous_days = 10\nmotion_days = 20\nmax_days = 20\n"
        "min_days = 1\nhot_days = 2\nthin_after_days = 3\n",
        volumes,
        cameras=("door", "rack"),
    )
    catalog = tmp_path / "catalog.sqlite"
    roots = {"hot": tmp_path / "hot", "archive": tmp_path / "archive"}
    now = int(time.time() * 1000)
    kinds, footage = [], []
    for camera in ("door", "rack"):
        for kind, count, first, step, activity in (
            ("expired", 75, now - 19 * DAY_MS, HOUR_MS, False),  # idle past 10 days
            ("thin", 20, now - 8 * DAY_MS, 3 * HOUR_MS, False),  # idle past 3 days
            ("migrate", 10, now - 8 * DAY_MS + 30 * MIN_MS, 4 * HOUR_MS, True),
            ("young", 5, now - 10 * HOUR_MS, HOUR_MS, False),
        ):
            for i in range(count):
                kinds.append(kind)
                footage.append(
                    {"camera": camera, "start_ms": first + i * step, "activity": activity}
                )
    seeded = seed(config, footage, tmp_path / "cache")
    door_expired = [
        s for s, k in zip(seeded, kinds, strict=True) if k == "expired" and s.camera == "door"
    ]
    held = door_expired[20:30]
    _hold(cli, config, "door", held[0].start_ms - MIN_MS, held[-1].end_ms + MIN_MS)
    held_ids = {s.id for s in held}
    originals = {
        s.id: (
            k if s.id not in held_ids else "held",
            str(s.path.relative_to(roots["hot"])),
            _sha(s.path),
        )
        for s, k in zip(seeded, kinds, strict=True)
    }

    left_behind = []  # intents each kill left for the next start-up
    for _round in range(3):
        daemon = FastDaemon(config)
        fast_daemons.append(daemon)
        daemon.start()
        # The first pass starts 0.5 s after ready; the kill comes as soon as an operation is
        # seen under way (its intent row written, its files not yet all done), however long
        # a busy machine takes to get there.
        wait_for(lambda: _under_way(catalog), 60, interval=0.005, what="an operation under way")
        daemon.kill9()
        assert daemon.proc is not None and daemon.proc.returncode == -9
        left_behind.append(len(_intents(catalog)))
    final = FastDaemon(config)
    fast_daemons.append(final)
    final.start()
    final.wait_event("retention.pass", timeout=120)
    assert final.stop() == 0
    assert any(left_behind), f"no kill landed in the middle of an operation: {left_behind}"
    for daemon in fast_daemons:  # start-up recovery left nothing for reconcile to repair
        assert not [
            e
            for e in daemon.events
            if e.get("event") in ("segment.adopted", "segment.missing", "reconcile.repair")
        ], daemon.raw[-20:]
    assert sum(d.count("intent.recovered") for d in fast_daemons) >= sum(left_behind)

    rows = _check_store(catalog, roots)
    for seg_id, (kind, path, sha) in originals.items():
        if kind in ("held", "young"):
            assert rows[seg_id] == Row("hot", path, sha, "ok")
        elif kind == "expired":
            assert seg_id not in rows and not (roots["hot"] / path).exists()
        else:  # the final pass thinned or migrated it: one copy, the original is gone
            row = rows[seg_id]
            if kind == "thin":
                assert re.search(r"-k(-\d+)?\.mp4$", row.path) and row.sha256 != sha, row
            else:
                assert (row.volume, row.sha256) == ("archive", sha), row
            assert not (roots["hot"] / path).exists()
    assert _reconcile_clean(cli, config) == []
    plan = cli.json(config, "purge", "--dry-run")
    assert [a for a in plan["actions"] if a["action"] == "delete"] == []
    purged = _audited(cli, config, "purge")
    assert set(purged) == {i for i, (k, _p, _s) in originals.items() if k == "expired"}
    assert not held_ids & set(
        purged + _audited(cli, config, "thin") + _audited(cli, config, "migrate")
    )
    assert cli.json(config, "audit", "list", "--action", "reconcile.repair") == []
    verify = cli.run(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


# --- 3. A volume whose identity file is missing -------------------------------------------


def _tree(root: Path) -> dict[str, tuple]:
    """Everything under root with its mtime (and a file's hash): any write shows."""
    return {
        str(p.relative_to(root)): (
            p.is_dir(),
            p.stat().st_mtime_ns,
            None if p.is_dir() else _sha(p),
        )
        for p in [root, *root.rglob("*")]
    }


def test_volume_without_identity_is_never_written_or_purged(tmp_path: Path, cli: Session) -> None:
    def volumes(**pressure: Any) -> list[dict[str, Any]]:
        return [
            _volume(tmp_path, "hot", "hot", **pressure),
            _volume(tmp_path, "archive", "archive", **pressure),
        ]

    config = _config(tmp_path, "", volumes())
    base = config.read_text()
    catalog = tmp_path / "catalog.sqlite"
    roots = {"hot": tmp_path / "hot", "archive": tmp_path / "archive"}
    now = int(time.time() * 1000)
    footage = [
        {"camera": "door", "start_ms": now - 20 * DAY_MS + (2 * i + j) * HOUR_MS, "volume": v}
        for j, v in enumerate(("hot", "archive"))
        for i in range(3)
    ]  # expired (continuous_days); never the same start twice: that would be one segment
    footage += [
        {"camera": "door", "start_ms": now - (5 - i) * HOUR_MS, "volume": v}
        for i, v in enumerate(("hot", "archive"))
    ]  # young
    seeded = seed(config, footage, tmp_path / "cache")
    before = _rows(catalog)
    on_archive = {s.id for s in seeded if before[s.id].volume == "archive"}
    assert len(on_archive) == 4
    expired_hot = {s.id for s in seeded[:3]}

    def archive_rows_untouched() -> None:  # still there, still 'ok', never 'missing'
        rows = _rows(catalog)
        assert {i: rows.get(i) for i in on_archive} == {i: before[i] for i in on_archive}

    identity = roots["archive"] / IDENTITY
    saved = identity.read_bytes()
    identity.unlink()
    untouched = _tree(roots["archive"])

    done = cli.json(config, "purge")
    assert (done["deleted"], done["failed"]) == (3, 0), done
    assert set(before) - set(_rows(catalog)) == expired_hot
    archive_rows_untouched()
    _reconcile_clean(cli, config, unavailable=("archive",))
    archive_rows_untouched()

    # Unmounted: the path is an empty directory now. Still not "all footage gone".
    disk = tmp_path / "archive-disk"
    roots["archive"].rename(disk)
    roots["archive"].mkdir()
    _reconcile_clean(cli, config, unavailable=("archive",))
    archive_rows_untouched()

    # Pressure everywhere (each volume over its max_bytes): the unavailable archive is
    # neither measured nor purged, nor a place to migrate the hot volume's footage to. (No
    # pressure floor: what is left on hot is the camera's newest day, which it would keep.)
    config.write_text(
        base.replace('role = "hot"', 'role = "hot"\nmax_bytes = 1').replace(
            'role = "archive"', 'role = "archive"\nmax_bytes = 1'
        )
        + "pressure_floor_hours = 0\n"
    )
    plan = cli.json(config, "purge", "--dry-run")["actions"]
    assert plan and all(a["volume"] == "hot" and a["target"] is None for a in plan), plan
    status = cli.json(config, "status")
    archive = next(v for v in status["volumes"] if v["name"] == "archive")
    assert archive["state"] == "unavailable" and IDENTITY in archive["reason"], archive
    assert cli.json(config, "purge")["failed"] == 0
    archive_rows_untouched()
    assert list(roots["archive"].iterdir()) == []  # nothing written to the mount point
    roots["archive"].rmdir()
    disk.rename(roots["archive"])
    assert _tree(roots["archive"]) == untouched  # nor to the disk: not a byte, not a dir

    # The disk is back: the next pass purges its expired footage, and only that.
    config.write_text(base)
    identity.write_bytes(saved)
    done = cli.json(config, "purge")
    assert (done["deleted"], done["failed"]) == (3, 0), done
    rows = _check_store(catalog, roots)
    assert on_archive & set(rows) == {seeded[-1].id}
    assert rows[seeded[-1].id] == before[seeded[-1].id]
    _reconcile_clean(cli, config)
    verify = cli.run(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_crash_inside_thinning_leaves_no_hidden_copy(
    crash_template, tmp_path: Path, cli: Session
) -> None:
    template, _originals = crash_template
    root = tmp_path / "store"
    config = _copy_store(template, root)
    crashed = subprocess.run(
        [*HELPER, "crash", str(config), "thin.ffmpeg_done"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    _reconcile_clean(cli, config)
    assert cli.json(config, "purge")["failed"] == 0
    _check_store(root / "catalog.sqlite", {"hot": root / "hot", "archive": root / "archive"})
    hidden = sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))
    assert hidden == []  # fails: one hidden keyframes-only copy of door's footage stays
