"""Access events from the two sources that are not HTTP, for real: a log file the access
system writes (followed through rotation and restarts) and a Mosquitto broker.

The promise is the same for both: every good event exactly once — none lost, none twice —
and a bad event named (by line number for a file) without costing the others.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import cli_json, run_cli, wait_for, write_config
from tests.peers.mosquitto import MosquittoBroker, mosquitto_available

ROOM = """
[[access.rooms]]
name = "server-room"
cameras = ["door-cam"]

[[access.doors]]
name = "SR-1"
room = "server-room"
"""
HEADER = "EventID,Timestamp,Reader,Badge,Dir,Outcome\n"


def config_with(root: Path, extra: str) -> Path:
    config = write_config(root, [{"name": "door-cam", "url": "demo://", "enabled": False}])
    config.write_text(config.read_text() + ROOM + extra)
    return config


def stored_ids(config: Path) -> list[str]:
    events = cli_json(config, "access-events", "--from", "-1d", "--to", "+1h")
    return [e["id"] for e in events]


def csv_line(n: int, door: str = "SR-1") -> str:
    return f"ev-{n},-{60 - n % 60}m,{door},p{n % 7},{'in' if n % 2 else 'out'},granted\n"


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
        f.flush()


def test_a_followed_log_rotated_and_restarted_gives_every_event_exactly_once(
    tmp_path: Path, daemon_factory: Any
) -> None:
    acs = tmp_path / "acs"
    acs.mkdir()
    log = acs / "events.csv"
    config = config_with(
        tmp_path,
        f"""
[access.file]
path = "{log}"
format = "csv"
[access.file.columns]
id = "EventID"
time = "Timestamp"
door = "Reader"
person = "Badge"
direction = "Dir"
result = "Outcome"
""",
    )
    daemon = daemon_factory(config)
    append(log, HEADER)
    for n in range(1, 11):  # written line by line while the daemon follows
        append(log, csv_line(n, door="NOWHERE" if n == 4 else "SR-1"))
    append(log, "ev-11,-5m,SR-1,p1,in,gran")  # no newline yet: not read until finished
    wait_for(lambda: len(stored_ids(config)) == 9, 30, what="the first ten lines")
    bad = daemon.wait_event("access.file_line_rejected", timeout=5)
    assert bad["line"] == 5 and "NOWHERE" in bad["reason"]  # the header is line 1
    append(log, "ted\n")
    wait_for(lambda: "ev-11" in stored_ids(config), 30, what="the finished line")
    os.rename(log, acs / "events.csv.1")  # rotation: the writer still holds the old file
    append(acs / "events.csv.1", csv_line(12))
    append(log, HEADER + csv_line(13))
    wait_for(lambda: {"ev-12", "ev-13"} <= set(stored_ids(config)), 30, what="both files")
    assert daemon.stop() == 0
    # While ccvault is down: more lines, and another rotation.
    append(log, csv_line(14))
    os.rename(acs / "events.csv.1", acs / "events.csv.2")
    os.rename(log, acs / "events.csv.1")
    append(acs / "events.csv.1", csv_line(15))
    append(log, HEADER + csv_line(16) + csv_line(17))
    daemon_factory(config)
    expected = {f"ev-{n}" for n in range(1, 18)} - {"ev-4"}
    wait_for(lambda: set(stored_ids(config)) == expected, 30, what="every event once more")
    ids = stored_ids(config)
    assert len(ids) == len(set(ids)) == 16  # exactly once


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    with MosquittoBroker(users={"acs": "acs-pass", "ccvault": "cc-pass"}) as b:
        b.start(tmp_path / "mqtt")
        yield b


def publisher(broker: MosquittoBroker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="acs-test")
    client.username_pw_set("acs", "acs-pass")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, payload: Any) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish("acs/events", data, qos=1).wait_for_publish(10)


def event(n: int, door: str = "SR-1") -> dict[str, Any]:
    return {
        "id": f"m-{n}",
        "time": "-1m",
        "door": door,
        "person": f"p{n}",
        "direction": "in",
        "result": "granted",
    }


def test_mqtt_events_land_once_through_a_broker_restart_and_a_daemon_restart(
    tmp_path: Path, broker: MosquittoBroker, daemon_factory: Any
) -> None:
    secret = tmp_path / "mqtt-pass"
    secret.write_text("cc-pass\n")
    secret.chmod(0o600)
    config = config_with(
        tmp_path,
        f"""
[access.mqtt]
url = "mqtt://127.0.0.1:{broker.port}"
topic = "acs/#"
username = "ccvault"
password_file = "{secret}"
""",
    )
    daemon = daemon_factory(config)
    daemon.wait_event("access.mqtt_connected", timeout=20)
    pub = publisher(broker)
    publish(pub, event(1))
    publish(pub, [event(2), event(3, door="NOWHERE"), event(4)])  # one bad in a list
    publish(pub, b"{not json")
    publish(pub, event(1))  # sent twice by the access system: stored once
    wait_for(lambda: set(stored_ids(config)) == {"m-1", "m-2", "m-4"}, 30, what="the events")
    pub.loop_stop()
    broker.restart()  # ccvault must reconnect by itself
    wait_for(lambda: daemon.count("access.mqtt_connected") >= 2, 90, what="a reconnection")
    pub = publisher(broker)
    publish(pub, event(5))
    wait_for(lambda: "m-5" in stored_ids(config), 30, what="an event after the restart")
    assert daemon.stop() == 0
    publish(pub, event(6))  # while ccvault is away: the broker keeps it for its session
    publish(pub, [event(7), event(8)])
    pub.loop_stop()
    daemon_factory(config)
    wait_for(
        lambda: set(stored_ids(config)) == {f"m-{n}" for n in (1, 2, 4, 5, 6, 7, 8)},
        30,
        what="what arrived while ccvault was down",
    )
    ids = stored_ids(config)
    assert len(ids) == len(set(ids))


def test_a_broker_password_over_plain_mqtt_to_another_host_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    config = config_with(
        tmp_path,
        f"""
[access.mqtt]
url = "mqtt://broker.example.org:1883"
topic = "acs/events"
username = "ccvault"
password_file = "{secret}"
""",
    )
    checked = run_cli(config, "check-config")
    assert checked.returncode == 2
    assert "access.mqtt.password_file" in checked.stderr and "TLS" in checked.stderr
