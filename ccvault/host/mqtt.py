"""One way to open an MQTT connection (paho-mqtt 2.x), for the access events ccvault takes and
the events it publishes: TLS with a verified certificate when asked, a password read by the
caller, and reconnection by paho itself (1 s doubling to 60 s) for as long as ccvault runs."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @classmethod
    def of(
        cls,
        url: str,
        tls: bool | None,
        username: str | None,
        password: str | None,
        ca_file: Path | None,
    ) -> Broker:
        parts = urlsplit(url)
        use_tls = parts.scheme == "mqtts" if tls is None else tls
        return cls(
            parts.hostname or "",
            parts.port or (8883 if use_tls else 1883),
            use_tls,
            username,
            password,
            ca_file,
        )

    @property
    def label(self) -> str:
        """host:port, for logs (never the password)."""
        return f"{self.host}:{self.port}"


def client(broker: Broker, client_id: str, *, persistent: bool) -> mqtt.Client:
    """A configured client, not connected yet (`connect_async` + `loop_start` by the caller).
    `persistent`: the broker keeps the session and what arrives while ccvault is away."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
    )
    if broker.username is not None:
        c.username_pw_set(broker.username, broker.password)
    if broker.tls:
        context = ssl.create_default_context(cafile=str(broker.ca_file) if broker.ca_file else None)
        c.tls_set_context(context)
    c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return c
