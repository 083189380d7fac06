"""A psycopg 3 connection with the surface the catalog's code uses of sqlite3's.

`execute(sql, params)` takes the common-subset SQL with `?` placeholders (`dialect.pg_sql`
turns them into psycopg's), returns a cursor with `fetchone`/`fetchall`/iteration/`rowcount`,
and rows read both by index and by column name, as `sqlite3.Row`. Autocommit: the writer
issues BEGIN/COMMIT itself, as on SQLite, so one transaction discipline serves both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from ccvault.catalog.dialect import (
    Backend,
    PgError,
    PgIntegrityError,
    PgOperationalError,
    pg_sql,
)
from ccvault.config.catalog_target import PgCatalog

CONNECT_TIMEOUT_S = 10


class Row(tuple):
    """A result row: `row[0]`, `row["name"]`, `row.keys()`, `dict(row)` as sqlite3.Row."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {col.name: i for i, col in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names)

    return make


class _IntegralNumeric(Loader):
    """SUM() of BIGINT is NUMERIC in PostgreSQL: read it as int (float if it has a fraction),
    as SQLite returns it, so no Decimal leaks into JSON or arithmetic."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


@contextmanager
def _translated() -> Iterator[None]:
    """psycopg's errors as the catalog's own (`dialect.PgError` and kin), chained."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise PgIntegrityError(str(exc)) from exc
    except psycopg.OperationalError as exc:
        raise PgOperationalError(str(exc)) from exc
    except psycopg.Error as exc:
        raise PgError(str(exc)) from exc


class PgConnection:
    """The catalog's PostgreSQL connection (autocommit; explicit BEGIN/COMMIT)."""

    backend = Backend.POSTGRES

    def __init__(self, target: PgCatalog, *, readonly: bool = False) -> None:
        self.target = target
        options = "-c default_transaction_read_only=on" if readonly else ""
        with _translated():
            self._conn = psycopg.connect(
                **target.conninfo(),
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=options,
                application_name="ccvault",
            )
        self._conn.adapters.register_loader("numeric", _IntegralNumeric)

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> psycopg.Cursor[Any]:
        args = dict(params) if isinstance(params, Mapping) else tuple(params)
        with _translated():
            return self._conn.execute(pg_sql(sql), args)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cur = self._conn.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            with _translated():
                cur.executemany(pg_sql(sql), rows)
        return cur

    def executescript(self, script: str) -> None:
        """Several statements (a migration script), no parameters: sent as they are."""
        with _translated():
            self._conn.execute(script.encode())

    @property
    def in_transaction(self) -> bool:
        status = self._conn.info.transaction_status
        return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def close(self) -> None:
        self._conn.close()
