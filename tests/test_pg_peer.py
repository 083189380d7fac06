"""The PostgreSQL test peer works, for real, with the client ccvault uses (psycopg 3).

If these fail, every test built on ``tests.peers.postgres`` (the catalog on PostgreSQL) would
fail for the wrong reason: the server, not ccvault. Each test waits for conditions with a
deadline, never for a fixed time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from tests.peers import PeerError
from tests.peers.postgres import PostgresServer, postgres_available

pytestmark = pytest.mark.timeout(90)

needs_postgres = pytest.mark.skipif(
    not postgres_available(), reason="PostgreSQL 15 is not installed (postgresql-15)"
)


def public_tables(conn: Any) -> int:
    return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]


def test_pg_database_is_a_fresh_db_for_a_password_role_over_tcp(
    postgres_server: PostgresServer, pg_database: str, tmp_path: Path
) -> None:
    params = conninfo_to_dict(pg_database)
    role, db = params["user"], params["dbname"]
    with psycopg.connect(pg_database) as conn:
        row = conn.execute(
            "SELECT host(inet_server_addr()), current_user, current_setting('fsync'),"
            " (SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        assert row == ("127.0.0.1", role, "on", role)  # TCP, the role, durable, owns the DB
        assert public_tables(conn) == 0
        conn.execute("CREATE TABLE leftover (id int)")  # the next test's database must not see it

    with postgres_server.connect() as admin:  # superuser over the unix socket, no password
        verifier = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]
        ).fetchone()[0]
    assert verifier.startswith("SCRAM-SHA-256$")

    bad = pg_database.replace(postgres_server.password(role), "wrong-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad).close()

    without_password = postgres_server.url(role, db, password=False)
    passfile = postgres_server.write_passfile(tmp_path / "pgpass", role)
    assert passfile.stat().st_mode & 0o077 == 0  # libpq ignores a group/world-readable file
    with psycopg.connect(without_password, passfile=str(passfile)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)


def test_serializable_write_skew_is_refused(pg_database: str) -> None:
    """Two SERIALIZABLE transactions that each read what the other writes: one must fail.

    (At REPEATABLE READ both would commit; only real SSI in the server refuses this.)
    """
    with psycopg.connect(pg_database, autocommit=True) as setup:
        assert public_tables(setup) == 0
        setup.execute("CREATE TABLE on_duty (guard text PRIMARY KEY, on_duty bool NOT NULL)")
        setup.execute("INSERT INTO on_duty VALUES ('ann', true), ('bob', true)")

    t1, t2 = psycopg.connect(pg_database), psycopg.connect(pg_database)
    try:
        for conn in (t1, t2):
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        # Each may go off duty only if someone else stays on duty.
        for conn in (t1, t2):
            assert conn.execute("SELECT count(*) FROM on_duty WHERE on_duty").fetchone() == (2,)
        t1.execute("UPDATE on_duty SET on_duty = false WHERE guard = 'ann'")
        t2.execute("UPDATE on_duty SET on_duty = false WHERE guard = 'bob'")
        t1.commit()
        with pytest.raises(errors.SerializationFailure):
            t2.commit()
    finally:
        t1.close()
        t2.close()

    with psycopg.connect(pg_database) as conn:
        on_duty = conn.execute("SELECT guard FROM on_duty WHERE on_duty").fetchall()
    assert on_duty == [("bob",)]


@needs_postgres
def test_postgres_stop_and_crash_keep_committed_data() -> None:
    """Its own server: a clean stop drops clients, a SIGKILL of the whole server loses only
    what was not committed, and both come back on the same URL."""
    server = PostgresServer()  # own cluster: the shared one must not be stopped under others
    try:
        server.start()
        server.create_role("recorder", secrets.token_hex(12))
        url = server.create_database("footage", owner="recorder")
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE TABLE segment (id int PRIMARY KEY)")
        conn.execute("INSERT INTO segment VALUES (1)")

        server.stop()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        conn.close()
        server.start()

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO segment VALUES (2)")  # committed before the crash
        open_tx = psycopg.connect(url)
        open_tx.execute("INSERT INTO segment VALUES (3)")  # never committed
        server.kill()
        assert not server.running
        open_tx.close()
        server.start()

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT id FROM segment ORDER BY id").fetchall() == [(1,), (2,)]
        assert "automatic recovery in progress" in server.log_tail(200)
    finally:
        server.close()
    assert server.directory is not None and not server.directory.exists()


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_postgres_as_root_refuses_a_directory_its_user_cannot_reach(tmp_path: Path) -> None:
    """pytest's tmp_path is private to root: say so up front, not as an initdb error."""
    with pytest.raises(PeerError, match="not reachable by user"):
        PostgresServer().start(tmp_path / "cluster")


@needs_postgres
def test_postgres_fast_mode_is_not_durable_on_purpose() -> None:
    with PostgresServer(fast=True) as server, server.connect() as conn:
        names = ("fsync", "synchronous_commit", "full_page_writes")
        got = [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]
    assert got == ["off", "off", "off"]
