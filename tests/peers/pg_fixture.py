"""pytest fixtures for a real PostgreSQL: one server per session, a fresh database per test.

Wire them in with ``pytest_plugins = ["tests.peers.pg_fixture"]`` in the top-level conftest
(or import both names there). A test asks for ``pg_database`` and gets the URL of an empty
database of its own, owned by the password role ``ccvault`` and reached over TCP
(SCRAM-SHA-256), dropped again after the test. Creating it clones the session's empty
template database, which takes a few tens of milliseconds; one initdb per session (about a
second) is the only slow part.

Tests that stop, kill or restart PostgreSQL should start their own ``PostgresServer`` rather
than disturb the shared one; ``pg_database`` restarts the shared server if one did anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
from collections.abc import Iterator

import pytest

from .postgres import PostgresServer, postgres_available

__all__ = ["APP_ROLE", "TEMPLATE_DB", "pg_database", "postgres_server"]

APP_ROLE = "ccvault"
# Empty today; a schema loaded into it once would be in every test's database for free.
TEMPLATE_DB = "ccvault_template"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL 15 (fsync on), with role ``ccvault`` and its template DB.

    ``postgres_server.password("ccvault")`` is the role's (random) password, and
    ``postgres_server.write_passfile(path, "ccvault")`` writes it as a libpq password file.
    """
    if not postgres_available():
        pytest.skip("PostgreSQL 15 is not installed (scripts/test installs postgresql-15)")
    server = PostgresServer()
    try:
        server.start()
        server.create_role(APP_ROLE, secrets.token_urlsafe(18))
        server.create_database(TEMPLATE_DB, owner=APP_ROLE)
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """``postgresql://ccvault:PASSWORD@127.0.0.1:PORT/NAME``: a new empty database per test.

    The name carries the test's name (``t12_test_something``) for reading server logs.
    """
    if not postgres_server.running:  # an earlier test stopped the shared server
        postgres_server.start()
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:40].strip("_")
    name = f"t{next(_counter)}_{slug}"
    url = postgres_server.create_database(name, owner=APP_ROLE, template=TEMPLATE_DB)
    yield url
    if postgres_server.running:
        with contextlib.suppress(Exception):  # a server the test broke must not fail teardown
            postgres_server.drop_database(name)
