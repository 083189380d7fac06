"""[node]: which recorder node this daemon is, and how it reaches the others.

Several nodes may share one catalog; each records, moves and purges only its own cameras and
volumes, and streams another node's footage from that node's API (`views.peers`).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ccvault.config.fields import Model, Slug, is_loopback

# How often a node says it is alive, and after how many missed beats the others call it down.
HEARTBEAT_S = 10
DOWN_AFTER_BEATS = 3


def host_slug(host: str | None = None) -> str:
    """This machine's name as a node name: lower case, [a-z0-9_-], at most 63 characters."""
    name = (host if host is not None else socket.gethostname()).split(".", 1)[0].lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", name).strip("-_")[:63]
    return slug or "node"


class NodeConfig(Model):
    name: Slug = Field(
        default_factory=host_slug,
        description="This node's name in the shared catalog: its cameras, volumes and "
        "footage are its own. Unique per site; two daemons never share one.",
        json_schema_extra={"default_text": "this host's name, as a slug"},
    )
    url: str | None = Field(
        None,
        description="https:// URL of this node's API as the other nodes reach it (they "
        "stream its footage from there). Unset: its footage shows as unavailable on the "
        "others. http:// only on a loopback address.",
    )
    peer_token_file: Path | None = Field(
        None,
        description="File holding the API token this node presents to the other nodes "
        "(users are site-wide: a viewer made for the purpose will do).",
    )
    ca_file: Path | None = Field(
        None,
        description="CA (PEM) the other nodes' TLS certificates are verified against, "
        "besides the system's.",
    )

    @field_validator("url")
    @classmethod
    def _https(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{url!r} is not an https:// URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"{url!r}: no credentials, query or fragment in a node URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(
                f"{url!r}: plain http would send tokens and footage in clear (use https://)"
            )
        return url.rstrip("/")
