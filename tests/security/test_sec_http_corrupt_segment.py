"""Issue 14, item 8: a segment that fails its hash is served with its corruption verdict, never
as the good file. The scrub flagged the row `corrupt`, yet the API served the file with the
catalogued hash as its ETag — a strong claim that these are the recorded bytes, which a cache
or an `If-Range` would stitch with good ones. Now a corrupt segment goes out marked
(`X-Ccvault-Integrity: corrupt`, in its `view.segment` record too) and without an ETag; the
verdict lives in the catalog, so it survives restarts; and a file that went bad since its last
scrub is caught by the first playback that reads it whole (`routes_media._check_whole`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ccvault.catalog import db
from ccvault.catalog.audit import AuditLog
from ccvault.storage.integrity import Scrubber
from tests.api_peer import Api, serve
from tests.conftest import wait_for, write_config
from tests.retention_seed import Seeded, seed


def spoil(seg: Seeded) -> None:
    """Flip one byte in the middle of the stored file, as a failing disk would."""
    os.chmod(seg.path, 0o640)
    with open(seg.path, "r+b") as f:
        f.seek(seg.path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def verdict(config: Path, seg: Seeded) -> str:
    catalog = config.parent / "catalog.sqlite"
    with db.connect(catalog, readonly=True) as conn:
        return conn.execute("SELECT integrity FROM segments WHERE id = ?", (seg.id,)).fetchone()[0]


def sha256_of(config: Path, seg: Seeded) -> str:
    with db.connect(config.parent / "catalog.sqlite", readonly=True) as conn:
        return conn.execute("SELECT sha256 FROM segments WHERE id = ?", (seg.id,)).fetchone()[0]


def served_as_corrupt(api: Api, seg: Seeded, good: str) -> None:
    api.ctx.same_start_s = 0.0  # every request below is its own playback, with its record
    url = f"/api/segments/{seg.id}/file"
    whole = api.client("viewer").get(url)
    assert whole.status_code == 200 and whole.headers["x-ccvault-integrity"] == "corrupt"
    assert "etag" not in whole.headers, whole.headers
    # A client holding the good file's ETag must not get a part of this one as if it matched.
    stale = {"Range": "bytes=0-9", "If-Range": f'"{good}"'}
    part = api.client("viewer").get(url, headers=stale)
    assert part.status_code == 200 and part.content == whole.content
    records = AuditLog(api.ctx.config.audit_path).records()
    viewed = [r for r in records if r["action"] == "view.segment"]
    assert viewed[-1]["details"]["integrity"] == "corrupt"


def test_a_corrupt_segment_is_never_served_as_the_good_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    scrubbed, unscrubbed, fine = seed(
        config,
        [{"camera": "door", "start_ms": now - 600_000 + i * 2000} for i in range(3)],
        tmp_path / "cache",
    )
    spoil(scrubbed)
    with serve(config) as api:
        scrub = Scrubber(api.ctx.writer, api.ctx.volumes, api.ctx.clock, mb_per_s=1000)
        wait_for(lambda: scrub.scrub_next() and verdict(config, scrubbed) == "corrupt", 30)
        served_as_corrupt(api, scrubbed, sha256_of(config, scrubbed))
        ok = api.client("viewer").get(f"/api/segments/{fine.id}/file")
        assert ok.headers["etag"] == f'"{sha256_of(config, fine)}"'
        assert ok.headers["x-ccvault-integrity"] in ("unchecked", "ok")
    with serve(config) as api:  # a restarted daemon reads the verdict from the catalog
        served_as_corrupt(api, scrubbed, sha256_of(config, scrubbed))
        # Gone bad since its last check: the first whole read finds out and flags it.
        spoil(unscrubbed)
        assert verdict(config, unscrubbed) == "unchecked"
        first = api.client("viewer").get(f"/api/segments/{unscrubbed.id}/file")
        assert first.status_code == 200
        wait_for(lambda: verdict(config, unscrubbed) == "corrupt", 30, what="the flag")
        served_as_corrupt(api, unscrubbed, sha256_of(config, unscrubbed))
        assert verdict(config, fine) != "corrupt"
