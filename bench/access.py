"""Benchmark: access-event ingest rate into the real daemon, over HTTP batches and over MQTT,
with zero loss (issue 15: ≥ 1,000 events/s each).

What it does: one `ccvault run` (no cameras recording; one room, two doors, 200 people) and
a real Mosquitto broker on loopback. Events are generated in time order — people entering and
leaving, a few denials — with unique ids, so every one must be stored exactly once.

- HTTP: `--events` events POSTed to /api/access-events in batches of 1,000 by the integration
  user, one request after another (an access system's importer); the rate is events ÷ (first
  request sent → the last event stored, read back from the catalog).
- MQTT: the same number of events published one per message, QoS 1, paced at `--mqtt-rate`
  (2,000/s: twice the goal); the rate is events ÷ (first publish → the last event stored).
  Pacing matters: a broker keeps only so many messages for a subscriber that is behind
  (mosquitto's `max_queued_messages`, 1,000 by default) and drops the rest, so an unpaced
  burst of 20,000 measures the broker's queue, not ccvault.
- Loss check: after each phase the catalog must hold exactly the events sent (count of
  distinct ids = events sent, none extra).

Bounded in count (the events you ask for) and time (each phase gives up after 300 s); all
traffic stays on 127.0.0.1.

    .venv/bin/python bench/access.py            # 20,000 events per phase
    .venv/bin/python bench/access.py --quick    # 2,000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ccvault_version
from tests.conftest import Daemon, run_cli, write_config
from tests.peers.mosquitto import MosquittoBroker

TARGET = 1000.0
PEOPLE = 200
ROOM = """
[access]
max_future_seconds = 600

[[access.rooms]]
name = "server-room"
cameras = []

[[access.doors]]
name = "SR-1"
room = "server-room"

[[access.doors]]
name = "SR-2"
room = "server-room"

[access.mqtt]
url = "mqtt://127.0.0.1:{port}"
topic = "acs/events"
"""


def events(prefix: str, n: int, start_ms: int, rng: random.Random) -> list[dict[str, Any]]:
    """People entering and leaving in turn, one event every 10 ms, 2 % denials."""
    inside: set[int] = set()
    out = []
    for i in range(n):
        person = rng.randrange(PEOPLE)
        direction = "out" if person in inside else "in"
        result = "denied" if rng.random() < 0.02 else "granted"
        if result == "granted":
            (inside.discard if direction == "out" else inside.add)(person)
        out.append(
            {
                "id": f"{prefix}-{i}",
                "time": start_ms + i * 10,
                "door": rng.choice(("SR-1", "SR-2")),
                "person": f"p{person}",
                "direction": direction,
                "result": result,
            }
        )
    return out


def stored(catalog: Path, prefix: str) -> tuple[int, int]:
    """(events with this prefix, distinct ids among them) in the catalog."""
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM access_events WHERE event_id LIKE ?",
            (f"{prefix}-%",),
        ).fetchone()


def wait_stored(catalog: Path, prefix: str, n: int, limit_s: float = 300) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if stored(catalog, prefix)[0] >= n:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"{prefix}: only {stored(catalog, prefix)[0]} of {n} stored in {limit_s} s")


def http_phase(url: str, token: str, catalog: Path, batch: list[dict[str, Any]]) -> dict:
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        t0 = time.monotonic()
        for i in range(0, len(batch), 1000):
            answer = client.post("/api/access-events", json={"events": batch[i : i + 1000]})
            body = answer.json()
            assert answer.status_code == 200 and not body["rejected"], answer.text[:300]
        sent = time.monotonic()
        done = wait_stored(catalog, "h", len(batch))
    return _result(len(batch), t0, sent, done, stored(catalog, "h"))


def mqtt_phase(port: int, catalog: Path, batch: list[dict[str, Any]], rate: float) -> dict:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-acs")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.monotonic()
    infos = []
    for i, event in enumerate(batch):  # paced: an access system publishes as events happen
        ahead = t0 + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        infos.append(client.publish("acs/events", json.dumps(event), qos=1))
    for info in infos:
        info.wait_for_publish(120)
    sent = time.monotonic()
    done = wait_stored(catalog, "m", len(batch))
    client.loop_stop()
    return _result(len(batch), t0, sent, done, stored(catalog, "m"))


def _result(n: int, t0: float, sent: float, done: float, counts: tuple[int, int]) -> dict:
    rate = n / (done - t0)
    return {
        "events": n,
        "send_s": round(sent - t0, 3),
        "stored_s": round(done - t0, 3),
        "events_per_s": round(rate),
        "stored": counts[0],
        "distinct": counts[1],
        "lost": n - counts[1],
        "extra": counts[0] - n,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--quick", action="store_true", help="2,000 events per phase")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument(
        "--mqtt-rate",
        type=float,
        default=2000.0,
        help="events published per second (one a message)",
    )
    args = p.parse_args(argv)
    n = 2000 if args.quick else args.events
    rng = random.Random(args.seed)
    print(f"ccvault {ccvault_version()}; {n} events per phase; load {os.getloadavg()[0]:.2f}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-access-") as tmp,
        MosquittoBroker(allow_anonymous=True) as broker,
    ):
        root = Path(tmp)
        broker.start(root / "mqtt")
        config = write_config(root, [])
        config.write_text(config.read_text() + ROOM.format(port=broker.port))
        token = run_cli(config, "user", "add", "acs", "--role", "integration").stdout.strip()
        daemon = Daemon(config).start()
        try:
            url = daemon.wait_event("http.listening", timeout=10)["url"]
            daemon.wait_event("access.mqtt_connected", timeout=30)
            now = int(time.time() * 1000) - 2 * n * 10
            results = {
                "http": http_phase(url, token, root / "catalog.sqlite", events("h", n, now, rng)),
                "mqtt": mqtt_phase(
                    broker.port,
                    root / "catalog.sqlite",
                    events("m", n, now + n * 10, rng),
                    args.mqtt_rate,
                ),
            }
        finally:
            daemon.stop()
    ok = True
    for name, r in results.items():
        print(
            f"{name}: {r['events']} events sent in {r['send_s']} s, all stored after "
            f"{r['stored_s']} s = {r['events_per_s']} events/s; stored {r['stored']}, "
            f"lost {r['lost']}, extra {r['extra']}"
        )
        passed = r["events_per_s"] >= TARGET and r["lost"] == 0 and r["extra"] == 0
        ok &= passed
        print(
            f"RESULT: {name} ingest {r['events_per_s']} events/s vs >= {TARGET:.0f}, zero "
            f"loss: {'PASS' if passed else 'FAIL'}"
        )
    print(json.dumps({"bench": "access", "version": ccvault_version(), **results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
