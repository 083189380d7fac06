"""The building blocks of the config model: the strict base model, sizes, slugs, zones, and
how a validation error is told to an operator (`key.path: problem`)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Slug = Annotated[str, Field(pattern=SLUG)]
# A DNS name as a Host header carries it, compared lower-case without a trailing dot.
HOST_NAME = r"^[a-z0-9_][a-z0-9_-]{0,62}(\.[a-z0-9_][a-z0-9_-]{0,62})*$"
HostName = Annotated[
    str,
    BeforeValidator(lambda v: v.lower().rstrip(".") if isinstance(v, str) else v),
    Field(pattern=HOST_NAME, max_length=253),
]
GIB = 1 << 30
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": GIB,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}


def _byte_size(value: object) -> object:
    """Sizes may be written as operators think of them: 1073741824, "1 GiB", "500GB"."""
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f'not a size: {value!r} (write bytes, or e.g. "500 GiB")')
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


ByteSize = Annotated[int, BeforeValidator(_byte_size), Field(ge=0)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def system_timezone() -> str:
    """The host's IANA zone name, so that a config without `timezone` shows local time."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and is_zone(tz):
        return tz
    try:
        text = Path("/etc/timezone").read_text().strip()
        if is_zone(text):
            return text
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        name = target.split("zoneinfo/", 1)[1]
        if is_zone(name):
            return name
    except (OSError, IndexError):
        pass
    return "UTC"


def is_loopback(host: str) -> bool:
    """Only this machine can reach it: 127.0.0.0/8, ::1 (also IPv4-mapped) or localhost. An
    empty host, 0.0.0.0, [::] and every other name or address reach further."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Polygon = Annotated[list[tuple[Fraction, Fraction]], Field(min_length=3)]


def override_of(settings: type[Model], name: str) -> type[Model]:
    """The per-camera table for a global one: the same keys, each optional (unset = global)."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=Model,
        **{
            key: (info.annotation | None, Field(None, description=info.description))
            for key, info in settings.model_fields.items()
        },
    )


Severity = Literal["info", "warning", "critical"]


def describe(exc: ValidationError) -> str:
    """First error as `key.path[0].name: problem`, the form operators grep for."""
    messages = []
    for err in exc.errors():
        loc = key_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ", msg):
            loc_prefix = loc + "." if loc else ""
            messages.append(loc_prefix + msg)
        else:
            messages.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(messages)


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
