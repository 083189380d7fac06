"""TLS to a PostgreSQL catalog (issue 16 item 2: `catalog_sslmode`, `catalog_sslrootcert`):
a real PostgreSQL 15 with `ssl=on` and a certificate for DNS:localhost only. With
`verify-full` and the CA that vouches for it, ccvault's connection is encrypted; a server the
configured CA does not vouch for, or a certificate for another host name, is refused before
a byte of the catalog is read or written, and the error says which."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccvault.catalog.db import PgCatalog
from ccvault.catalog.writer import CatalogWriter
from tests.conftest import run_cli, write_config
from tests.peers import self_signed
from tests.peers.pg_fixture import APP_ROLE
from tests.peers.postgres import PostgresServer, postgres_available

CHECK_FAILED = 1  # `ccvault status`: what it checks is not well


@pytest.fixture(scope="module")
def tls_server() -> Iterator[PostgresServer]:
    if not postgres_available():
        pytest.skip("PostgreSQL 15 is not installed (scripts/test installs postgresql-15)")
    server = PostgresServer(fast=True, tls=True)
    try:
        server.start()
        server.create_role(APP_ROLE, secrets.token_urlsafe(18))
        yield server
    finally:
        server.close()


def _catalog(
    server: PostgresServer, directory: Path, host: str, ca: Path | None
) -> tuple[PgCatalog, str]:
    """A new database reached at `host` with verify-full against `ca`, and its name."""
    name = f"tls_{secrets.token_hex(4)}"
    server.create_database(name, owner=APP_ROLE)
    passfile = directory / "pgpass"
    passfile.write_text(f"{host}:{server.port}:*:{APP_ROLE}:{server.password(APP_ROLE)}\n")
    passfile.chmod(0o600)
    url = f"postgresql://{APP_ROLE}@{host}:{server.port}/{name}"
    return PgCatalog(url, passfile, "verify-full", ca), name


def _tables(server: PostgresServer, name: str) -> int:
    with server.connect(name) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return row.fetchone()[0]


def test_a_verified_server_gets_the_catalog_over_tls(
    tls_server: PostgresServer, tmp_path: Path
) -> None:
    target, name = _catalog(tls_server, tmp_path, "localhost", tls_server.ca_file)
    writer = CatalogWriter(target)  # creates the schema: real writes over the connection
    try:
        with writer.reader() as conn:
            assert conn.execute("SELECT count(*) FROM segments").fetchone()[0] == 0
            with tls_server.connect() as admin:
                encrypted = admin.execute(
                    "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a"
                    " USING (pid) WHERE a.datname = %s AND a.usename = %s",
                    (name, APP_ROLE),
                ).fetchall()
    finally:
        writer.close()
    assert encrypted and all(ssl for ssl, _ in encrypted), encrypted
    assert _tables(tls_server, name) > 0


@pytest.mark.parametrize(
    ("host", "other_ca", "said"),
    [
        ("localhost", True, "certificate verify failed"),
        ("127.0.0.1", False, 'does not match host name "127.0.0.1"'),
    ],
    ids=["another-ca", "another-host-name"],
)
def test_a_server_the_ca_does_not_vouch_for_is_refused(
    tls_server: PostgresServer, tmp_path: Path, host: str, other_ca: bool, said: str
) -> None:
    ca = self_signed(tmp_path, "other")[0] if other_ca else tls_server.ca_file
    target, name = _catalog(tls_server, tmp_path, host, ca)
    config = write_config(tmp_path, [], catalog=target)
    result = run_cli(config, "status")
    assert result.returncode == CHECK_FAILED, (result.returncode, result.stdout, result.stderr)
    assert "catalog: UNREACHABLE" in result.stdout and said in result.stdout, result.stdout
    assert "UNREACHABLE: unreachable" not in result.stdout  # the reason, not the word again
    assert _tables(tls_server, name) == 0, "nothing reached the database"
