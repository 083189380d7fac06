"""Publishing ccvault's events over MQTT, the way recorder users wire them into building and
home-automation systems (Frigate's convention):

- `<prefix>/available`: `online` / `offline`, retained, `offline` also the last will;
- `<prefix>/<camera>/state`: the camera's state (recording, offline, …), retained;
- `<prefix>/<camera>/motion`: `ON` / `OFF`, retained, as motion starts and ends;
- `<prefix>/<room>/occupancy`: `{"count", "inside": [{person, role, entered}]}`, retained;
- `<prefix>/events`: JSON `{"type": "motion"|"alert"|"visit", …}` for each motion start and
  end, alert change and entry or exit (QoS 1).

Observers only: nothing here decides anything, and a broker that is away costs nothing but
its messages (paho queues QoS 1 messages while it reconnects; state topics are retained, so a
subscriber arriving later reads the current state).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
import structlog

from ccvault.alerts.model import Alert
from ccvault.catalog.rows import Span
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.access import MqttPublishConfig
from ccvault.config.secrets import read_secret
from ccvault.host.mqtt import Broker, client
from ccvault.recorder.states import CameraState
from ccvault.timefmt import utc_text
from ccvault.views import access

log = structlog.get_logger("ccvault.mqtt")


class Publisher:
    def __init__(self, cfg: MqttPublishConfig, writer: CatalogWriter) -> None:
        self.cfg, self.writer = cfg, writer
        self.prefix = cfg.publish_prefix.rstrip("/")
        self.broker = Broker.of(
            cfg.url, cfg.tls, cfg.username, read_secret(cfg.password_file, None), cfg.ca_file
        )
        self.client = client(self.broker, f"ccvault-{socket.gethostname()}", persistent=False)
        self.client.will_set(self._topic("available"), "offline", qos=1, retain=True)
        self.client.on_connect = self._connected
        self._motion: dict[str, bool] = {}
        self._inside: dict[str, set[int]] = {}  # room -> open visit ids last published
        self._lock = threading.Lock()

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.publish(self._topic("available"), "offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    # -- what the parts tell it -------------------------------------------------------------

    def camera_state(self, camera: str, state: CameraState, since_ms: int, _reason: str) -> None:
        self._publish(f"{camera}/state", str(state), retain=True)

    def spans(self, camera: str, closed: list[Span], still_open: Span | None) -> None:
        """Motion ON when a span is open at the newest analysed footage, OFF when none."""
        moving = still_open is not None and still_open.kind == "motion"
        with self._lock:
            was = self._motion.get(camera, False)
            self._motion[camera] = moving
        if moving == was and not (closed and not moving):
            return
        if moving != was:
            self._publish(f"{camera}/motion", "ON" if moving else "OFF", retain=True)
        span = (
            still_open
            if moving
            else next((s for s in reversed(closed) if s.kind == "motion"), None)
        )
        if span is not None:
            self._event(
                {
                    "type": "motion",
                    "camera": camera,
                    "status": "start" if moving else "end",
                    "start": utc_text(span.start_ms),
                    "end": utc_text(span.end_ms),
                }
            )

    def alert(self, alert: Alert, kind: str) -> None:
        self._event(
            {
                "type": "alert",
                "change": kind,
                "name": alert.name,
                "status": alert.status,
                "severity": alert.severity,
                "labels": alert.labels,
                "summary": alert.summary,
                "started": utc_text(alert.starts_ms),
            }
        )

    def rooms(self, config: Any, rooms: set[str]) -> None:
        """Occupancy (retained) and an event per entry or exit, after door events."""
        with self.writer.reader() as conn:
            state = {r.room: r for r in access.occupancy(conn, config) if r.room in rooms}
        for room, occupancy in state.items():
            inside = {v.id for v in occupancy.inside}
            with self._lock:
                before, self._inside[room] = self._inside.get(room, set()), inside
            self._publish(
                f"{room}/occupancy",
                json.dumps(
                    {
                        "count": occupancy.count,
                        "inside": [
                            {"person": v.person, "role": v.role, "entered": v.entered}
                            for v in occupancy.inside
                        ],
                    }
                ),
                retain=True,
            )
            for visit in occupancy.inside:
                if visit.id not in before:
                    self._event(
                        {
                            "type": "visit",
                            "status": "entered",
                            "room": room,
                            "visit": visit.id,
                            "person": visit.person,
                            "role": visit.role,
                            "time": visit.entered,
                        }
                    )
            for gone in sorted(before - inside):
                self._event({"type": "visit", "status": "left", "room": room, "visit": gone})

    # -- the connection ---------------------------------------------------------------------

    def _connected(self, c: mqtt.Client, _data: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt.refused", broker=self.broker.label, reason=str(reason))
            return
        c.publish(self._topic("available"), "online", qos=1, retain=True)
        log.info("mqtt.connected", broker=self.broker.label, prefix=self.prefix)

    def _event(self, body: dict[str, Any]) -> None:
        self._publish("events", json.dumps(body), retain=False)

    def _publish(self, topic: str, payload: str, retain: bool) -> None:
        self.client.publish(self._topic(topic), payload, qos=1, retain=retain)

    def _topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"
