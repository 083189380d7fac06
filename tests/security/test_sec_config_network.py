"""No config sends a secret in clear or names a port the kernel cannot bind.

The HTTP API carries tokens, session cookies and footage: on an address other machines reach
it needs TLS, or the operator's explicit `allow_plain_http = true`. A webhook's headers and a
URL's user:password are secrets too: never over plain http:// to another machine. Each refusal
is exit 2 naming the keys involved; the allowed neighbours of each case are checked too, so the
rules are not blanket.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccvault.config.loading import load
from ccvault.errors import ConfigError
from tests.conftest import run_cli

BASE = """timezone = "UTC"
[storage]
catalog = "catalog.sqlite"
[[storage.volumes]]
name = "hot"
path = "hot"
"""


def check(tmp_path: Path, extra: str) -> tuple[int, str]:
    """check-config's exit code and stderr."""
    config = tmp_path / "ccvault.toml"
    config.write_text(BASE + extra)
    result = run_cli(config, "check-config")
    return result.returncode, result.stderr


def loads(tmp_path: Path, extra: str) -> bool:
    """The allowed neighbours, in-process (the same `load` check-config calls; faster)."""
    config = tmp_path / "allowed.toml"
    config.write_text(BASE + extra)
    try:
        load(config)
    except ConfigError as exc:
        raise AssertionError(str(exc)) from None
    return True


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:65536", "127.0.0.1:99999", ":70000", "[::1]:65536", "0.0.0.0:0", "[::]:0"],
)
def test_ports_outside_1_to_65535_are_refused(tmp_path: Path, listen: str) -> None:
    tls = 'tls_cert = "c.pem"\ntls_key = "k.pem"\n'  # so only the port can be wrong
    code, stderr = check(tmp_path, f'[http]\nlisten = "{listen}"\n{tls}')
    assert code == 2, stderr
    assert "http.listen: port " in stderr and "outside 1-65535" in stderr


@pytest.mark.parametrize(
    "listen",
    [
        "0.0.0.0:8750",
        ":8750",
        "[::]:8750",
        "192.0.2.10:8750",
        "camera-server.example:8750",
        "[::ffff:0.0.0.0]:8750",
        "127.1:8750",  # getaddrinfo reads it as 127.0.0.1, but it is no name we can vouch for
    ],
)
def test_listening_beyond_loopback_without_tls_is_refused(tmp_path: Path, listen: str) -> None:
    code, stderr = check(tmp_path, f'[http]\nlisten = "{listen}"\n')
    assert code == 2, stderr
    assert "http.listen: " in stderr
    assert "http.tls_cert" in stderr and "http.allow_plain_http" in stderr
    with_tls = f'[http]\nlisten = "{listen}"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
    assert loads(tmp_path, with_tls)
    assert loads(tmp_path, f'[http]\nlisten = "{listen}"\nallow_plain_http = true\n')


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:8750", "127.0.0.2:1", "localhost:65535", "[::1]:8750", "127.0.0.1:0"]
)
def test_loopback_listen_addresses_need_no_tls(tmp_path: Path, listen: str) -> None:
    assert loads(tmp_path, f'[http]\nlisten = "{listen}"\n')


def webhook(url: str, headers: dict[str, str] | None = None) -> str:
    text = f"[alerts.webhook]\nurl = {json.dumps(url)}\n"
    if headers:
        text += "headers = { " + ", ".join(f'"{k}" = "{v}"' for k, v in headers.items()) + " }\n"
    return text


@pytest.mark.parametrize(
    ("url", "headers", "key"),
    [
        ("http://hooks.example.org/x", {"Authorization": "Bearer s3cr3t"}, "headers"),
        ("http://hooks.example.org/x", {"authorization": "Bearer s3cr3t"}, "headers"),
        ("http://hooks.example.org/x", {"AUTHORIZATION": "Bearer s3cr3t"}, "headers"),
        ("http://hooks.example.org/x", {"X-Api-Key": "s3cr3t"}, "headers"),
        ("http://192.0.2.7:9000/x", {"Cookie": "session=s3cr3t"}, "headers"),
        ("http://hook:s3cr3t@hooks.example.org/x", None, "url"),
        ("http://s3cr3t@hooks.example.org/x", None, "url"),
        ("http://hook:s3cr3t@[2001:db8::1]:8080/x", None, "url"),
    ],
)
def test_webhook_secrets_over_plain_http_are_refused(
    tmp_path: Path, url: str, headers: dict[str, str] | None, key: str
) -> None:
    code, stderr = check(tmp_path, webhook(url, headers))
    assert code == 2, stderr
    assert f"alerts.webhook.{key}: " in stderr
    assert "http://" in stderr and "s3cr3t" not in stderr, "the error never shows the secret"
    secure = url.replace("http://", "https://")
    assert loads(tmp_path, webhook(secure, headers)), "over https it is fine"


def test_webhook_secrets_to_loopback_or_without_secrets_are_allowed(tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer s3cr3t"}
    for url, headers in [
        ("http://127.0.0.1:9000/x", auth),
        ("http://localhost:9000/x", auth),
        ("http://[::1]:9000/x", auth),
        ("http://hook:s3cr3t@127.0.0.1:9000/x", None),
        ("http://hooks.example.org/x", None),
    ]:
        assert loads(tmp_path, webhook(url, headers)), url
