"""The building blocks of the config model: the strict base model, sizes, slugs, zones, and
how a validation error is told to an operator (`key.path: problem`)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

# What a pattern means, in words: a validation error names this, never the regex itself.
FORMS: dict[str, str] = {}


def form(pattern: str, words: str) -> str:
    """`pattern` for a Field, remembered with what people are told when a value misses it."""
    FORMS[pattern] = words
    return pattern


SLUG = form(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "lower-case letters, digits, - and _ (up to 63, starting with a letter or digit)",
)

Slug = Annotated[str, Field(pattern=SLUG)]
# A DNS name as a Host header carries it, compared lower-case without a trailing dot.
HOST_NAME = form(
    r"^[a-z0-9_][a-z0-9_-]{0,62}(\.[a-z0-9_][a-z0-9_-]{0,62})*$",
    "a host name (letters, digits, - and _, dot-separated)",
)
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
        msg = problem(err)
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


# Pydantic's error types in words people read (the CLI's and the API's errors alike); the
# values in braces come from the error's context.
_WORDS = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "date_type": "must be a date (YYYY-MM-DD)",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "datetime_type": "must be a date and time",
    "datetime_parsing": "must be a date and time",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
    "json_invalid": "is not valid JSON",
    "json_type": "must be JSON",
}


def problem(err: Mapping[str, Any]) -> str:
    """One validation error in words: a pattern by what it means (`FORMS`), a bound or a type
    by a sentence; our own validators' messages as they are (without "Value error, ")."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        return "must be " + FORMS.get(str(ctx.get("pattern")), "in the form this key takes")
    if kind in _WORDS:
        try:
            return _WORDS[kind].format(**{k: _shown(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            return _WORDS[kind].split(" {")[0]
    msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
    return msg.removeprefix("Assertion failed, ")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
