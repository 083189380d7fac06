"""SIGHUP: a new config is applied as a whole, or rejected as a whole.

What decides is here (pure but for reading the file); the daemon forwards an accepted config to
each part's `apply(config)`.
"""

from __future__ import annotations

from pathlib import Path

from ccvault.config.loading import LoadedConfig, load
from ccvault.config.model import Config
from ccvault.config.secrets import check_secrets
from ccvault.errors import ConfigError

# Settings read once at start-up: a reload that changes them is rejected as a whole.
RESTART_ONLY = (
    "storage.catalog",
    "storage.state_dir",
    "storage.catalog_password_file",
    "storage.catalog_sslmode",
    "storage.catalog_sslrootcert",
    "node",  # which node this daemon is, and how it reaches the others
    "storage.spool",
    "audit.path",
    "audit.max_bytes",
    "audit.journald",
    "http.listen",
    "http.tls_cert",
    "http.tls_key",
    "http.max_connections",  # the descriptor budget is checked at start-up
    "http.max_connections_per_client",
    "http.request_timeout_seconds",
    "http.idle_timeout_seconds",
    "http.stall_timeout_seconds",
    "motion.workers",
    "access.mqtt",
    "access.file",
    "mqtt",
)


def load_new(running: Config, path: Path) -> LoadedConfig:
    """The config file as it is now, if the running daemon can take it; else ConfigError."""
    loaded = load(path)
    check_secrets(loaded.config, path, credentials=True)
    restart = [k for k in RESTART_ONLY if _get(running, k) != _get(loaded.config, k)]
    if restart:
        raise ConfigError(
            str(path),
            f"{', '.join(restart)}: only read at start-up "
            "(restart the service to change it); nothing was applied",
        )
    return loaded


def changes(old: Config, new: Config) -> dict[str, list[str]]:
    """What a reload changes, for its audit record: sections, and cameras by name."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    sections = sorted(k for k in after if k != "cameras" and before.get(k) != after[k])
    was = {c.name: c for c in old.cameras}
    now = {c.name: c for c in new.cameras}
    return {
        "sections": sections,
        "cameras_added": sorted(now.keys() - was.keys()),
        "cameras_removed": sorted(was.keys() - now.keys()),
        "cameras_changed": sorted(n for n in now.keys() & was.keys() if now[n] != was[n]),
    }


def _get(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
