"""Issue 14, item 8: every playback by a session is audited, not the first only. A session's
second, third… viewing of a segment (or clip, or still) left no record, however much later it
came. A playback is now a request from the file's start (no Range, or a range from byte 0):
each gets its `view.*` record (`ApiContext.record_due`). A player's range requests inside one
playback stay one record — yet no request pattern escapes: a session that never asks for
byte 0 still gets a record for each minute (`repeat_s`) it keeps reading."""

from __future__ import annotations

import time
from pathlib import Path

from ccvault.catalog.audit import AuditLog
from ccvault.timefmt import utc_text
from tests.api_peer import Api, serve
from tests.conftest import write_config
from tests.retention_seed import seed


def views(api: Api, action: str) -> int:
    records = AuditLog(api.ctx.config.audit_path).records()
    return sum(1 for r in records if r["action"] == action)


def test_every_playback_by_a_session_is_audited(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    segs = seed(
        config,
        [{"camera": "door", "start_ms": now - 600_000 + i * 2000} for i in range(2)],
        tmp_path / "cache",
    )
    url = f"/api/segments/{segs[0].id}/file"
    with serve(config) as api:
        api.ctx.same_start_s, api.ctx.repeat_s = 0.5, 1.5  # the day's 2 s and 60 s, shortened
        viewer = api.client("viewer")
        assert viewer.get(url).status_code == 200  # a playback
        for part in ("bytes=100-199", "bytes=200-", "bytes=-50"):  # the player reading on
            assert viewer.get(url, headers={"Range": part}).status_code == 206
        assert views(api, "view.segment") == 1
        time.sleep(api.ctx.same_start_s)
        assert viewer.get(url, headers={"Range": "bytes=0-"}).status_code == 206  # a replay
        assert viewer.get(url, headers={"Range": "bytes=0-1"}).status_code == 206  # its twin
        assert views(api, "view.segment") == 2
        time.sleep(api.ctx.repeat_s)
        assert viewer.get(url, headers={"Range": "bytes=1-"}).status_code == 206  # never byte 0
        assert views(api, "view.segment") == 3
        window = {"camera": "door", "from": utc_text(segs[0].start_ms), "to": utc_text(now)}
        still = {"at": utc_text(segs[1].start_ms + 500)}
        for _ in range(2):
            assert viewer.get("/api/clip.mp4", params=window).status_code == 200
            assert viewer.get("/api/cameras/door/still.jpg", params=still).status_code == 200
            time.sleep(api.ctx.same_start_s)
        assert (views(api, "view.clip"), views(api, "view.still")) == (2, 2)
