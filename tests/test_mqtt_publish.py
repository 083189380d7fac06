"""ccvault's own events over MQTT, to a real Mosquitto: availability (with a last will),
camera state and motion as retained state topics, occupancy after door events, and an event
stream of motion, alerts and visits."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import run_cli, wait_for, write_config
from tests.peers.mosquitto import MosquittoBroker, mosquitto_available

CONFIG = """
[mqtt]
url = "mqtt://127.0.0.1:{port}"
publish_prefix = "site-a"

[[access.rooms]]
name = "server-room"
cameras = ["room-cam"]
grace_seconds = 3

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.people]]
id = "c-17"
role = "contractor"
"""


class Listener:
    """Every message under a prefix, in arrival order; retained ones included."""

    def __init__(self, port: int, prefix: str) -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="listener")
        self.client.on_message = self._message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _c: Any, _d: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, m.payload.decode(), bool(m.retain)))

    def values(self, topic: str) -> list[str]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.values("site-a/events")) if e["type"] == kind]


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    with MosquittoBroker(allow_anonymous=True) as b:
        b.start(tmp_path / "mqtt")
        yield b


@pytest.mark.slow
def test_state_motion_occupancy_and_alerts_are_published(
    tmp_path: Path, broker: MosquittoBroker, daemon_factory: Any
) -> None:
    config = write_config(
        tmp_path, [{"name": "room-cam", "url": "demo://?period=8"}], segment_seconds=2
    )
    config.write_text(config.read_text() + CONFIG.format(port=broker.port))
    acs = run_cli(config, "user", "add", "acs", "--role", "integration").stdout.strip()
    listen = Listener(broker.port, "site-a")
    daemon = daemon_factory(config)
    wait_for(lambda: "online" in listen.values("site-a/available"), 30, what="online")
    wait_for(
        lambda: "recording" in listen.values("site-a/room-cam/state"), 30, what="the camera's state"
    )
    wait_for(
        lambda: listen.values("site-a/room-cam/motion")[-2:] == ["ON", "OFF"],
        120,
        what="motion ON then OFF",
    )
    assert {e["status"] for e in listen.events("motion")} >= {"start", "end"}
    url = daemon.wait_event("http.listening", timeout=5)["url"]
    httpx.post(
        f"{url}/api/access-events",
        headers={"Authorization": f"Bearer {acs}"},
        json={
            "events": [
                {
                    "id": "e1",
                    "time": "now",
                    "door": "SR-1",
                    "person": "c-17",
                    "direction": "in",
                    "result": "granted",
                }
            ]
        },
        timeout=30,
    )
    wait_for(lambda: listen.values("site-a/server-room/occupancy"), 30, what="occupancy")
    occupancy = json.loads(listen.values("site-a/server-room/occupancy")[-1])
    assert occupancy["count"] == 1 and occupancy["inside"][0]["person"] == "c-17"
    # The visit's event is published after the room's occupancy: wait for it too.
    wait_for(lambda: listen.events("visit"), 30, what="the visit event")
    assert listen.events("visit")[0]["status"] == "entered"
    wait_for(
        lambda: any(
            e["name"] == "two_person_rule" and e["change"] == "fired"
            for e in listen.events("alert")
        ),
        60,
        what="the alert event",
    )
    assert daemon.stop() == 0
    wait_for(
        lambda: listen.values("site-a/available")[-1:] == ["offline"],
        30,
        what="offline when stopped",
    )
    late = Listener(broker.port, "site-a")  # a subscriber arriving now reads the state
    wait_for(lambda: late.values("site-a/server-room/occupancy"), 10, what="retained state")
    assert late.values("site-a/available") == ["offline"]
