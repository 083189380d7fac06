"""Access events by MQTT: one JSON event, or a list of them, per message.

At-least-once end to end: the subscription is QoS 1 on a persistent session (the broker keeps
what arrives while ccvault is away), and a message is acknowledged only after its events are
committed — a crash before that makes the broker send it again, and the events' own ids make
the second copy a duplicate, not a second event. Messages are taken in batches (one catalog
transaction for many), so a burst costs a few commits, not one per message.
"""

from __future__ import annotations

import json
import queue
import socket
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog

from ccvault.access.events import MAX_BATCH
from ccvault.access.log import AccessLog
from ccvault.config.access import AccessMqttConfig
from ccvault.config.secrets import read_secret
from ccvault.host import threads
from ccvault.host.mqtt import Broker, client

log = structlog.get_logger("ccvault.access")

SOURCE = "mqtt"


@dataclass(frozen=True, slots=True)
class _Message:
    mid: int
    qos: int
    payload: bytes


class MqttSource:
    def __init__(self, cfg: AccessMqttConfig, access: AccessLog) -> None:
        self.cfg, self.access = cfg, access
        broker = Broker.of(
            cfg.url, cfg.tls, cfg.username, read_secret(cfg.password_file, None), cfg.ca_file
        )
        self.broker = broker
        self.client = client(broker, f"ccvault-access-{socket.gethostname()}", persistent=True)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self._queue: queue.Queue[_Message | None] = queue.Queue()
        self._worker = threads.Thread(target=self._work, name="access-mqtt", daemon=True)
        self.connected = False

    def start(self) -> None:
        self._worker.start()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._queue.put(None)
        self._worker.join(timeout=10)

    # -- paho's network thread: only hands messages over ----------------------------------

    def _connected(self, c: mqtt.Client, _data: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("access.mqtt_refused", broker=self.broker.label, reason=str(reason))
            return
        self.connected = True
        c.subscribe(self.cfg.topic, qos=1)
        log.info("access.mqtt_connected", broker=self.broker.label, topic=self.cfg.topic)

    def _disconnected(
        self, _c: mqtt.Client, _data: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self.connected:
            log.warning("access.mqtt_disconnected", broker=self.broker.label, reason=str(reason))
        self.connected = False

    def _message(self, _c: mqtt.Client, _data: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(_Message(message.mid, message.qos, message.payload))

    # -- the worker: batches into one transaction, then acknowledges ----------------------

    def _work(self) -> None:
        """Whatever has arrived is one batch: under a burst the batches grow by themselves,
        and a lone message is committed (and acknowledged) at once."""
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self._record(batch)

    def _record(self, batch: list[_Message]) -> None:
        events: list[Any] = []
        for message in batch:
            events += _events(message.payload)
        try:
            self.access.record(events, SOURCE)
        except Exception:  # not acknowledged: the broker sends them again
            log.exception("access.mqtt_record_failed", messages=len(batch))
            return
        for message in batch:
            if message.qos:
                self.client.ack(message.mid, message.qos)


def _events(payload: bytes) -> list[Any]:
    """A message's events: one object or a list. Anything else is one bad event (judged and
    named like any other), never a stuck message."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return [f"not JSON ({len(payload)} bytes)"]
    return value if isinstance(value, list) else [value]
