"""Where the config file is and what its TOML says, before any of it is validated.

Kept apart from `loading` (which validates the whole `Config`) so a command that needs only
one table, or none, does not import and build every model: `ccvault analyze` reads only
`[motion]` (`policy.motion_of_file`), and its whole process is weighed against a bare decode
(bench/motion.py).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from ccvault.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/ccvault/ccvault.toml")


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, then CCVAULT_CONFIG, then the system default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("CCVAULT_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables as TOML parses them, or ConfigError naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no such config file") from None
    except OSError as exc:
        raise ConfigError(str(path), exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
