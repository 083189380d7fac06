"""A daemon end to end with its catalog on PostgreSQL: a real RTSP camera recorded, its
segments listed and held through the CLI, the rows in the database, this node's own files in
`[storage] state_dir`. (The catalog-level tests run on both backends; this is the one
end-to-end run on PostgreSQL, the rest of the end-to-end suite stays on SQLite.)"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import psycopg
import pytest

from ccvault.catalog import db
from tests.api_peer import serve
from tests.conftest import cli_json, pg_catalog, run_cli, wait_for, write_config
from tests.peers import RtspServer, free_port
from tests.peers.pg_fixture import APP_ROLE
from tests.peers.postgres import PostgresServer

pytestmark = pytest.mark.timeout(180)


@pytest.mark.slow
def test_a_daemon_records_lists_and_holds_on_a_postgresql_catalog(
    tmp_path: Path, daemon_factory, postgres_server: PostgresServer, pg_database: str
) -> None:
    rtsp = RtspServer().start()
    catalog = pg_catalog(postgres_server, pg_database, tmp_path)
    config = write_config(
        tmp_path,
        [{"name": "door", "url": f"rtsp://127.0.0.1:{rtsp.port}/cam"}],
        segment_seconds=2,
        catalog=catalog,
    )
    daemon = daemon_factory(config)

    def listed() -> list[dict]:
        return cli_json(config, "segments", "--camera", "door", "--from", "-10m", "--to", "now")

    wait_for(lambda: len(listed()) >= 2, 60, what="door segments listed from PostgreSQL")
    found = listed()
    for seg in found:
        data = Path(seg["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == seg["sha256"] and len(data) == seg["bytes"]

    held = run_cli(
        config, "hold", "add", "--camera", "door", "--from", "-10m", "--to", "now",
        "--reason", "incident 12",
    )  # fmt: skip
    assert held.returncode == 0, held.stderr
    hold_id = int(held.stdout.strip())
    [hold] = cli_json(config, "hold", "list")
    assert (hold["id"], hold["state"], hold["cameras"]) == (hold_id, "active", ["door"])

    with psycopg.connect(pg_database) as conn:  # the rows are in the database, nowhere else
        rows = conn.execute(
            "SELECT count(*) FROM segments s JOIN cameras c ON c.id = s.camera_id"
            " WHERE c.name = 'door'"
        ).fetchone()[0]
        assert rows >= len(found)
        assert conn.execute("SELECT reason FROM holds").fetchall() == [("incident 12",)]
    assert not list(tmp_path.rglob("*.sqlite")), "no SQLite catalog beside a PostgreSQL one"
    state = tmp_path / "state"
    assert (state / "audit.jsonl").is_file() and (state / "signing-key.pem").is_file()
    actions = [r["action"] for r in cli_json(config, "audit", "list")]
    assert "hold.add" in actions
    assert cli_json(config, "audit", "verify")["ok"]

    # The other readers and writers people use, on the same catalog, while it records.
    status = cli_json(config, "status")
    assert status["cameras"][0]["name"] == "door"
    assert status["volumes"][0]["footage_bytes"] >= sum(s["bytes"] for s in found)
    plan = cli_json(config, "purge", "--dry-run", "--all")
    assert {a["segment_id"] for a in plan["actions"]} >= {s["id"] for s in found}
    assert {a["rule"] for a in plan["actions"] if a["segment_id"] == found[0]["id"]} == {
        f"hold:{hold_id}"
    }
    why = cli_json(config, "explain", "--camera", "door", "--at", found[0]["start"])
    assert (why["segment_id"], why["rule"]) == (found[0]["id"], f"hold:{hold_id}")
    checked = run_cli(config, "verify", "--camera", "door", "--json")
    assert checked.returncode == 0, checked.stderr
    out = tmp_path / "state" / "exports" / "bundle"  # inside [export] dir (in state_dir)
    exported = run_cli(
        config, "export", "--camera", "door", "--from", found[0]["start"], "--to",
        found[-1]["end"], "--out", str(out), "--reason", "incident 12",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    verified = run_cli(config, "verify-export", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert run_cli(config, "alerts", "--json").returncode in (0, 1)  # 1: something firing

    refused = run_cli(config, "backup", str(tmp_path / "bk"))
    assert refused.returncode == 4 and "pg_dump" in refused.stderr
    assert daemon.stop() == 0


def test_a_command_on_an_unreachable_postgresql_catalog_is_busy_not_a_traceback(
    tmp_path: Path,
) -> None:
    closed = free_port()  # nothing listens there
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        catalog=db.PgCatalog(f"postgresql://ccvault@127.0.0.1:{closed}/cat"),
    )
    result = run_cli(config, "segments", "--camera", "door", "--from", "-1h", "--to", "now")
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith("ccvault: error: catalog: unreachable: ")
    assert "Traceback" not in result.stderr


def test_the_api_answers_503_while_its_postgresql_catalog_is_down_and_recovers(
    tmp_path: Path,
) -> None:
    server = PostgresServer()  # its own: the shared server must not stop under others
    try:
        server.start()
        server.create_role(APP_ROLE, secrets.token_urlsafe(12))
        url = server.create_database("cat", owner=APP_ROLE)
        config = write_config(
            tmp_path,
            [{"name": "door", "url": "demo://", "enabled": False}],
            catalog=pg_catalog(server, url, tmp_path),
        )
        query = {"camera": "door", "from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}
        with serve(config) as api, api.client("viewer") as client:
            assert client.get("/api/segments", params=query).status_code == 200
            server.stop()
            down = client.get("/api/segments", params=query)
            assert down.status_code == 503, down.text
            assert down.json()["error"] == {
                "code": "busy",
                "message": "catalog: unreachable",
                "field": None,
            }
            server.start()
            assert client.get("/api/segments", params=query).status_code == 200
    finally:
        server.close()
