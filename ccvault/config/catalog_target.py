"""Where the catalog lives: a SQLite file (the embedded default) or a PostgreSQL database.

`[storage] catalog` is a path or a `postgresql://user@host[:port]/db` URL. The URL never holds
the password (a config file is read by more people than a password should be): it comes from
`[storage] catalog_password_file` or libpq's PGPASSFILE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class CatalogUrlError(ValueError):
    """A `[storage] catalog` URL that cannot be used (and why)."""


@dataclass(frozen=True)
class PgCatalog:
    """A PostgreSQL catalog: the URL (no password) and how to authenticate and encrypt."""

    url: str
    password_file: Path | None = None
    sslmode: str | None = None
    sslrootcert: Path | None = None

    def __str__(self) -> str:
        return self.url

    def conninfo(self) -> dict[str, str]:
        """libpq connection keywords (the URL's, then the settings beside it)."""
        out = {"conninfo": self.url}
        if self.password_file is not None:
            out["passfile"] = str(self.password_file)
        if self.sslmode is not None:
            out["sslmode"] = self.sslmode
        if self.sslrootcert is not None:
            out["sslrootcert"] = str(self.sslrootcert)
        return out


def is_url(text: str) -> bool:
    """Does `[storage] catalog` name a database server rather than a file?"""
    return "://" in text


def check_url(text: str) -> str:
    """The URL as given when it is one ccvault can use; else `CatalogUrlError` saying why."""
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise CatalogUrlError(
            f"{parts.scheme!r} is not a catalog URL scheme (a path, or postgresql://...)"
        )
    if parts.password is not None:
        raise CatalogUrlError(
            "the URL holds a password: put it in storage.catalog_password_file (mode 0600) "
            "or PGPASSFILE, never in the config"
        )
    if "password" in unquote(parts.query).lower():
        raise CatalogUrlError("the URL holds a password parameter: use catalog_password_file")
    if not parts.username:
        raise CatalogUrlError("the URL names no user (postgresql://user@host/db)")
    if not parts.path.strip("/"):
        raise CatalogUrlError("the URL names no database (postgresql://user@host/db)")
    return text
