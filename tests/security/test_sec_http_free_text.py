"""Issue 14, item 8: control characters in free text are a 400 naming the field (the CLI: exit
2), not a 500 and not a stored record. A NUL in a hold reason broke the server; a line break,
an escape sequence or a bidi override in a reason or a user name forges lines and rewrites
what auditors read. One rule (`ccvault.text.plain_text`) guards every field people type — hold
and release reasons, export reasons, user names — in the library functions the API and the
CLI share, so no door skips it."""

from __future__ import annotations

import time
from pathlib import Path

from ccvault.catalog.audit import AuditLog
from ccvault.errors import USAGE
from tests.api_peer import Api, export_jobs, serve
from tests.conftest import run_cli, write_config

HOSTILE = [
    "\x00",
    "before\x00after",
    "two\nlines",
    "cr\roverwrite",
    "\x1b[2J\x1b[31mcleared",
    "tab\there",
    "del\x7f",
    "c1\x85next",
    "line\u2028separator",
    "para\u2029graph",
    "\u202eevil.exe",
    "isolate\u2066x\u2069",
]
FINE = ["不審者の確認 (警察の依頼)", "Case #42 — door 🚪", 'O\'Brien & co: "urgent"']


def test_control_characters_in_free_text_are_refused_naming_the_field(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    jobs, writer = export_jobs(config)
    try:
        with serve(config, exports=jobs) as api:
            over_http(api)
    finally:
        jobs.stop()
        writer.close()
    on_the_command_line(config)
    audit = AuditLog(tmp_path / "audit.jsonl").path.read_text(encoding="utf-8")
    for text in HOSTILE:
        if text.strip():
            assert text not in audit and text.encode("unicode_escape").decode() not in audit


def over_http(api: Api) -> None:
    op = api.client("operator")
    window = {"from": "-1h", "to": "now"}
    for text in HOSTILE:
        for path, body in (
            ("/api/holds", {**window, "reason": text}),
            ("/api/exports", {**window, "camera": "door", "reason": text}),
        ):
            answer = op.post(path, json=body)
            assert answer.status_code == 400, (path, repr(text), answer.text)
            assert answer.json()["error"]["field"] == "reason", (path, answer.text)
    assert op.get("/api/holds").json() == []
    held = op.post("/api/holds", json={**window, "reason": FINE[0]})
    assert held.status_code == 201 and held.json()["reason"] == FINE[0]
    for text in HOSTILE:
        answer = op.request("DELETE", f"/api/holds/{held.json()['id']}", json={"reason": text})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "reason"
    assert op.get("/api/holds").json()[0]["state"] == "active"
    for text in FINE[1:]:
        assert op.post("/api/holds", json={**window, "reason": text}).status_code == 201


def on_the_command_line(config: Path) -> None:
    """The same rule, through the commands (argv cannot carry a NUL): exit 2. A few kinds
    suffice here, since the API above tried them all on the same library functions."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = str(config.parent / "exports" / "bundle")
    for text in ("two\nlines", "\x1b[2J\u202eevil.exe"):
        export = ("export", "--camera", "door", "--from", "-1h", "--to", now, "--out", out)
        for args in (
            ("hold", "add", "--from", "-1h", "--to", now, "--reason", text),
            ("hold", "release", "1", "--reason", text),
            (*export, "--reason", text),
            ("user", "add", f"eve{text}", "--role", "viewer"),
        ):
            done = run_cli(config, *args)
            assert done.returncode == USAGE, (args, done.returncode, done.stderr)
            named = "NAME" if args[0] == "user" else "one line of printable text"
            assert done.stderr.startswith("ccvault: error:") and named in done.stderr, done.stderr
    listed = run_cli(config, "user", "list", "--json")
    assert "eve" not in listed.stdout
    assert run_cli(config, "user", "add", "eve\n", "--role", "viewer").returncode == USAGE
