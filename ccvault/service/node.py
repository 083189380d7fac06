"""This daemon as one node of a shared catalog: its start (claim, or refuse another node's
cameras and volumes) and its heartbeat, which the other nodes' `node_offline` reads."""

from __future__ import annotations

import contextlib
from pathlib import Path

import structlog

from ccvault.catalog.nodes import Taken, taken_by_others
from ccvault.catalog.writer import CatalogGone, CatalogWriter
from ccvault.config.model import Config
from ccvault.errors import ConfigError

log = structlog.get_logger("ccvault.node")


def start_node(config: Config, writer: CatalogWriter, config_path: Path, now_ms: int) -> None:
    """Register this node before anything it records or stores makes a row. A configured
    camera or volume another node owns is a config error (exit 2), named by its key: two
    nodes recording one camera, or both purging one volume, would each undo the other."""
    cameras = [c.name for c in config.cameras]
    volumes = [v.name for v in config.storage.volumes]
    taken = writer.nodes.start(config.node.name, config.node.url, cameras, volumes, now_ms)
    _refuse(config, config_path, taken)
    log.info("node.started", node=config.node.name, url=config.node.url)


def check_reload(config: Config, writer: CatalogWriter, config_path: Path) -> None:
    """A reloaded config may not add a camera or volume another node owns either."""
    cameras = [c.name for c in config.cameras]
    volumes = [v.name for v in config.storage.volumes]
    with writer.reader() as conn:
        _refuse(config, config_path, taken_by_others(conn, config.node.name, cameras, volumes))


def _refuse(config: Config, config_path: Path, taken: list[Taken]) -> None:
    if taken:
        problems = [
            (
                f"cameras[{t.index}].name"
                if t.kind == "camera"
                else f"storage.volumes[{t.index}].name"
            )
            + f": {t.kind} {t.name!r} belongs to node {t.owner!r} in this catalog"
            for t in taken
        ]
        raise ConfigError(
            str(config_path),
            "; ".join(problems)
            + f" (this node is {config.node.name!r}; names are unique across the site)",
        )


def heartbeat(config: Config, writer: CatalogWriter, now_ms: int) -> None:
    """Say this node is alive (a catalog that is gone just misses beats: catalog_error)."""
    with contextlib.suppress(CatalogGone):
        writer.nodes.heartbeat(config.node.name, config.node.url, now_ms)
