"""pytest fixtures for the real S3 peer (tests/peers/s3.py).

A test module imports the ones it uses (``from tests.peers.s3_fixture import s3_server``), or
tests/conftest.py can list this module in ``pytest_plugins`` to offer them everywhere.

One cluster per session: it starts in ~2 s but holds every stored byte in RAM, so tests share
it and keep apart by bucket (``s3_bucket`` gives each test its own Object Lock bucket).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running RGW for the whole session; its directory (logs) stays in pytest's tmp dir."""
    server = S3Server().start(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_server: S3Server) -> Any:
    """A boto3 client for the session's RGW (path-style, us-east-1)."""
    return s3_server.client()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A new bucket with Object Lock enabled (hence versioned), for this test alone.

    Not deleted afterwards: versions under COMPLIANCE retention cannot be, and the whole
    store goes away with the session's cluster anyway.
    """
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name
