"""The Mosquitto test peer works, for real, with the client ccvault uses (paho-mqtt).

If these fail, every test built on ``tests.peers.mosquitto`` would fail for the wrong reason:
the broker, not ccvault. Each test waits for conditions with a deadline, never for a fixed time.
"""

from __future__ import annotations

import gc
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.peers import self_signed
from tests.peers.mosquitto import MosquittoBroker, mosquitto_available

pytestmark = pytest.mark.timeout(90)

needs_mosquitto = pytest.mark.skipif(
    not mosquitto_available(), reason="Mosquitto is not installed (mosquitto)"
)

MQ_USER, MQ_PASSWORD = "cam-bridge", "s3cret:with spaces"
WAIT_S = 15.0


# --------------------------------------------------------------------------- MQTT


class Client:
    """A paho-mqtt 2.x client on its own network thread, recording what happens to it.

    It (re)subscribes in on_connect, so after the broker comes back and paho reconnects by
    itself, messages flow again without the test doing anything.
    """

    def __init__(
        self,
        broker: MosquittoBroker,
        *,
        topics: tuple[str, ...] = (),
        user: str | None = MQ_USER,
        password: str | None = MQ_PASSWORD,
        client_id: str = "",
        reconnect: bool = False,
    ) -> None:
        self.broker, self.topics = broker, topics
        self.cond = threading.Condition()
        self.acks: list[Any] = []  # reason code of every CONNACK
        self.subscribed = 0  # SUBACKs
        self.disconnects = 0
        self.messages: list[Any] = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=reconnect,
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _notify(self, change: Callable[[], None]) -> None:
        with self.cond:
            change()
            self.cond.notify_all()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            for topic in self.topics:
                client.subscribe(topic, qos=1)
        self._notify(lambda: self.acks.append(rc))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        def count() -> None:
            self.subscribed += 1

        self._notify(count)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        def count() -> None:
            self.disconnects += 1

        self._notify(count)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._notify(lambda: self.messages.append(message))

    def connect(self, *, tls_ca: Path | None = None, host: str = "127.0.0.1") -> Client:
        """Connect (TLS when a CA is given) and start paho's network thread."""
        port = self.broker.port
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
            port = self.broker.tls_port
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        return self

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; broker log:\n"
                    + self.broker.stderr_tail()
                )

    def wait_ready(self, connects: int = 1) -> None:
        """Until the n-th successful CONNACK and all its SUBACKs have arrived."""
        self.wait(
            f"connection #{connects}",
            lambda: (
                sum(not rc.is_failure for rc in self.acks) >= connects
                and self.subscribed >= connects * len(self.topics)
            ),
        )

    def payloads(self, topic: str) -> list[bytes]:
        with self.cond:
            return [m.payload for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1: returns once the broker acknowledged it (PUBACK)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    if not mosquitto_available():
        pytest.skip("Mosquitto is not installed (scripts/test installs mosquitto)")
    with MosquittoBroker(users={MQ_USER: MQ_PASSWORD}, tls=True) as b:
        yield b


def test_mqtt_qos1_with_password_and_a_retained_message(broker: MosquittoBroker) -> None:
    for user, password in ((MQ_USER, "wrong"), (None, None)):  # wrong password, anonymous
        refused = Client(broker, user=user, password=password).connect()
        refused.wait("the CONNACK", lambda c=refused: bool(c.acks))
        assert refused.acks[0].is_failure, refused.acks
        refused.close()

    sub = Client(broker, topics=("cams/+/events",)).connect()
    pub = Client(broker).connect()
    try:
        sub.wait_ready()
        pub.publish("cams/door/events", b"motion")
        sub.wait("the QoS 1 message", lambda: sub.payloads("cams/door/events") == [b"motion"])
        assert sub.messages[0].qos == 1

        pub.publish("cams/door/state", b"online", retain=True)
    finally:
        sub.close()
        pub.close()

    # A subscriber that comes (back) later gets the retained state at once, every time.
    for attempt in (1, 2):
        late = Client(broker, topics=("cams/door/state",), client_id="late-sub").connect()
        try:
            late.wait(
                f"the retained message (connection {attempt})",
                lambda c=late: c.payloads("cams/door/state") == [b"online"],
            )
            assert late.messages[0].retain
        finally:
            late.close()


def test_mqtt_tls_verifies_against_the_ca(broker: MosquittoBroker, tmp_path: Path) -> None:
    assert broker.ca_cert is not None
    sub = Client(broker, topics=("tls/check",)).connect(tls_ca=broker.ca_cert, host="localhost")
    try:
        sub.wait_ready()
        tls = sub.client.socket()
        assert isinstance(tls, ssl.SSLSocket) and tls.version() in ("TLSv1.2", "TLSv1.3")
        sub.publish("tls/check", b"over tls")
        sub.wait("the message over TLS", lambda: sub.payloads("tls/check") == [b"over tls"])
    finally:
        sub.close()

    other_ca, _ = self_signed(tmp_path, "other-ca")
    with warnings.catch_warnings():
        # paho leaves the socket of a failed handshake for the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        for ca, host in ((broker.ca_cert, "127.0.0.1"), (other_ca, "localhost")):
            # The certificate names localhost only; and it must chain to the CA given.
            with pytest.raises(ssl.SSLCertVerificationError):
                Client(broker).connect(tls_ca=ca, host=host)
        gc.collect()


@needs_mosquitto
def test_mqtt_client_reconnects_after_a_broker_restart() -> None:
    with MosquittoBroker(users={MQ_USER: MQ_PASSWORD}) as broker:
        sub = Client(broker, topics=("cams/+/events",), reconnect=True).connect()
        pub = Client(broker, reconnect=True).connect()
        try:
            sub.wait_ready()
            pub.wait_ready()
            pub.publish("cams/yard/events", b"before")
            sub.wait("the first message", lambda: sub.payloads("cams/yard/events") == [b"before"])

            t0 = time.monotonic()
            broker.restart()
            # Both notice the drop, then paho's own loop reconnects (1-2 s back-off).
            sub.wait("the drop", lambda: sub.disconnects >= 1)
            sub.wait_ready(connects=2)
            pub.wait_ready(connects=2)
            back_s = time.monotonic() - t0
            pub.publish("cams/yard/events", b"after")
            sub.wait(
                "the message after the restart",
                lambda: sub.payloads("cams/yard/events") == [b"before", b"after"],
            )
            assert back_s < 10, back_s
        finally:
            sub.close()
            pub.close()
