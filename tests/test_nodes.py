"""Several nodes, one catalog (issue 16 item 3): two real daemons — two data roots, two
configs with their own `[node] name` — share one catalog file, each recording its own camera
from a real RTSP server; each lists and plays the other's footage (streamed over TLS from the
owner's API), a node stopped raises `node_offline` on the other and its footage shows as
unavailable, never as a gap, and no node's retention touches another's footage."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from ccvault.alerts.conditions import node_offline
from ccvault.alerts.dispatcher import Dispatcher
from ccvault.alerts.manager import AlertManager
from ccvault.catalog import db, queries
from ccvault.catalog.schema import MIGRATIONS
from ccvault.catalog.writer import CatalogWriter
from ccvault.config.alerts import AlertsBase, AlertsConfig
from ccvault.views.health import Health, NodeHealth
from tests.conftest import (
    CCVAULT,
    REPO,
    Daemon,
    cli_json,
    run_cli,
    toml_value,
    wait_for,
    write_config,
)
from tests.peers import RtspServer, free_port, self_signed

SEGMENT_S = 2
WIDE = ("--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z")


def _node_config(
    root: Path,
    node: str,
    camera: dict,
    *,
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    extra: str = "",
    catalog: db.Target | None = None,
) -> Path:
    """A node's config in the shared root (one catalog: root/catalog.sqlite, or the PostgreSQL
    database `catalog` with this node's own state_dir, root/state-<node>: its own locks, as on
    its own machine), its own volume, spool and audit log (root/<node>/audit.jsonl); with
    `port` and `tls`, its API on HTTPS at https://localhost:port. Exports go to root/exports
    on every node."""
    volume = {"name": f"vol-{node}", "path": str(root / f"{node}-hot"), "role": "hot"}
    path = write_config(
        root,
        [camera],
        segment_seconds=SEGMENT_S,
        volumes=[volume],
        name=f"{node}.toml",
        catalog=catalog,
    )
    text = path.read_text()
    if isinstance(catalog, db.PgCatalog):
        state = f"state_dir = {toml_value(root / 'state')}"
        assert state in text
        text = text.replace(state, f"state_dir = {toml_value(root / f'state-{node}')}")
        extra += f"\n[export]\ndir = {toml_value(root / 'exports')}\n"
    node_table = f'\n[audit]\npath = "{root / node / "audit.jsonl"}"\n\n[node]\nname = "{node}"\n'
    if port is not None and tls is not None:
        text = text.replace(
            'listen = "127.0.0.1:0"',
            f'listen = "127.0.0.1:{port}"\ntls_cert = "{tls[0]}"\ntls_key = "{tls[1]}"',
        )
        node_table += f'url = "https://localhost:{port}"\n'
    path.write_text(text + node_table + extra)
    return path


def _segments(config: Path, camera: str) -> list[dict]:
    return cli_json(config, "segments", "--camera", camera, *WIDE)


def _api_url(daemon: Daemon) -> str:
    return daemon.wait_event("http.listening", timeout=20)["url"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # two daemons, three node states and a dozen CLI runs
def test_two_nodes_on_one_catalog_share_footage_and_keep_to_their_own(
    tmp_path: Path, daemon_factory, catalog_target: db.Target
) -> None:
    """Two data roots' daemons on one catalog: a shared SQLite file (one machine), or one
    PostgreSQL database (the several-machines case)."""
    rtsp = RtspServer(paths=("/a", "/b")).start()
    port_b = free_port()
    cert_b = self_signed(tmp_path, "node-b")
    token_file = tmp_path / "peer-token"
    extra_a = f'peer_token_file = "{token_file}"\nca_file = "{cert_b[0]}"\n'
    config_a = _node_config(
        tmp_path,
        "a",
        {"name": "cam-a", "url": rtsp.url("/a")},
        extra=extra_a,
        catalog=catalog_target,
    )
    config_b = _node_config(
        tmp_path,
        "b",
        {"name": "cam-b", "url": rtsp.url("/b")},
        port=port_b,
        tls=cert_b,
        catalog=catalog_target,
    )
    state_a = tmp_path / "state-a" if isinstance(catalog_target, db.PgCatalog) else tmp_path
    # Users are site-wide: a viewer made on node b is what node a shows node b.
    made = run_cli(config_b, "user", "add", "peer-a", "--role", "viewer")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)

    node_a = daemon_factory(config_a)
    node_b = daemon_factory(config_b)
    url_a = _api_url(node_a)
    for config, camera in ((config_b, "cam-a"), (config_a, "cam-b")):
        wait_for(lambda c=config, n=camera: len(_segments(c, n)) >= 3, 60, what=f"{camera}")

    # Each node lists the other's footage, each segment naming its node.
    b_seen_from_a = _segments(config_a, "cam-b")
    assert {s["node"] for s in b_seen_from_a} == {"b"}
    assert {s["unavailable"] for s in b_seen_from_a} == {None}
    assert {s["node"] for s in _segments(config_b, "cam-a")} == {"a"}
    cameras = httpx.get(f"{url_a}/api/cameras", headers={"Authorization": f"Bearer {token}"})
    assert {(c["name"], c["node"]) for c in cameras.json()} == {("cam-a", None), ("cam-b", "b")}

    # Node a plays node b's segment: byte for byte the file on b's volume, by CLI and API.
    seg = b_seen_from_a[0]
    original = (tmp_path / "b-hot" / seg["path"]).read_bytes()
    out = tmp_path / "exports" / "played.mp4"  # footage leaves only to an allowed place
    played = run_cli(config_a, "segment-file", str(seg["id"]), "--out", str(out), "--json")
    assert played.returncode == 0, played.stderr
    assert out.read_bytes() == original
    elsewhere = run_cli(config_a, "segment-file", str(seg["id"]), "--out", str(tmp_path / "x"))
    assert elsewhere.returncode == 4 and "--out" in elsewhere.stderr
    assert json.loads(played.stdout)["node"] == "b"
    auth = {"Authorization": f"Bearer {token}"}
    whole = httpx.get(f"{url_a}/api/segments/{seg['id']}/file", headers=auth, timeout=30)
    assert whole.status_code == 200 and whole.content == original
    assert whole.headers["etag"] == f'"{seg["sha256"]}"'
    assert whole.headers["content-type"] == "video/mp4"  # said by the row, not by node b
    part = httpx.get(
        f"{url_a}/api/segments/{seg['id']}/file", headers={**auth, "Range": "bytes=10-99"}
    )
    assert part.status_code == 206 and part.content == original[10:100]

    # Why b's footage is kept is b's to say (its policy, its audit log): node a asks node b
    # and says what b says, by CLI and API alike, naming b.
    own_word = run_cli(config_b, "explain", "--camera", "cam-b", "--at", seg["start"], "--json")
    assert own_word.returncode == 0, own_word.stderr
    b_says = json.loads(own_word.stdout)
    assert b_says["node"] == "b" and b_says["segment_id"] == seg["id"]
    relayed = run_cli(config_a, "explain", "--camera", "cam-b", "--at", seg["start"], "--json")
    assert relayed.returncode == 0, relayed.stderr
    assert json.loads(relayed.stdout) == b_says
    over_http = httpx.get(
        f"{url_a}/api/explain", params={"camera": "cam-b", "at": seg["start"]}, headers=auth
    )
    assert over_http.status_code == 200 and over_http.json() == b_says
    words = run_cli(config_a, "explain", "--camera", "cam-b", "--at", seg["start"])
    assert words.returncode == 0 and f"segment {seg['id']} of cam-b (node b):" in words.stdout
    never = run_cli(config_a, "explain", "--camera", "cam-b", "--at", "2020-01-01T00:00:00Z")
    assert never.returncode == 3, never.stderr
    assert "node b: " in never.stderr and "nothing was ever recorded then" in never.stderr

    # Node a exports node b's footage: fetched from b, checked against the catalog's SHA-256,
    # the bundle verifies and holds b's original file byte for byte.
    bundle = tmp_path / "exports" / "b-door"  # in [export] dir
    exported = run_cli(
        config_a,
        "export",
        "--camera",
        "cam-b",
        "--from",
        seg["start"],
        "--to",
        b_seen_from_a[1]["end"],
        "--out",
        str(bundle),
        "--reason",
        "incident 7 across server rooms",
        "--json",
    )
    assert exported.returncode == 0, exported.stderr
    assert run_cli(config_a, "verify-export", str(bundle)).returncode == 0
    assert original in [f.read_bytes() for f in bundle.rglob("*.mp4")]
    assert not (state_a / ".peer-footage").exists() or not any(
        (state_a / ".peer-footage").iterdir()
    )

    # Node a's retention pass with a ceiling of seconds, run by a config that (wrongly) also
    # names b's volume, so it could reach b's files: it purges a's old footage, none of b's.
    b_before = _segments(config_a, "cam-b")
    purge_config = config_a.with_name("a-purge.toml")
    purge_config.write_text(
        config_a.read_text()
        + "\n[retention]\nmax_days = 0.0001\nmotion_days = 0.0001\ncontinuous_days = 0.0001\n"
        "min_days = 0\npressure_floor_hours = 0\n"
        f'\n[[storage.volumes]]\nname = "vol-b"\npath = "{tmp_path / "b-hot"}"\n'
    )
    wait_for(
        lambda: any(
            s["end_ms"] < time.time() * 1000 - 10_000 for s in _segments(config_a, "cam-a")
        ),
        60,
        what="footage of cam-a past the ceiling",
    )
    purged_at = _segments(config_a, "cam-a")[0]["start"]  # the oldest, to the millisecond
    purged = cli_json(purge_config, "purge")
    assert purged["deleted"] >= 1, purged
    # Why footage is kept or gone is told by the node that keeps it (b's own audit log would
    # say "never recorded"): node a has no API URL, so node b cannot ask it, and says so.
    asked = run_cli(config_b, "explain", "--camera", "cam-a", "--at", purged_at)
    assert asked.returncode == 5, asked.stderr
    assert "node a records it" in asked.stderr and "no [node] url" in asked.stderr
    assert "run ccvault explain on node a" in asked.stderr
    told = run_cli(config_a, "explain", "--camera", "cam-a", "--at", purged_at)
    assert told.returncode == 3 and "deleted" in told.stderr, told.stderr
    b_after = _segments(config_b, "cam-b")
    assert {s["id"] for s in b_before} <= {s["id"] for s in b_after}
    for s in b_before:
        assert (tmp_path / "b-hot" / s["path"]).is_file()
    # Nor does that config make a's reconcile walk b's volume: it is reported, not entered.
    checked = run_cli(purge_config, "reconcile", "--json")
    assert checked.returncode == 1, checked.stderr
    assert json.loads(checked.stdout)["unavailable"] == [
        {"volume": "vol-b", "reason": "another node's volume"}
    ]

    # Node b stops: node a raises node_offline, keeps recording, and shows b's footage as
    # unavailable (b down since …) — not as a gap, and never as missing.
    assert node_b.stop() == 0
    wait_for(
        lambda: [
            a
            for a in cli_json(config_a, "alerts")["active"]
            if a["name"] == "node_offline" and a["labels"] == {"node": "b"}
        ],
        120,
        what="node_offline for node b",
    )
    nodes = {n["name"]: n["up"] for n in cli_json(config_a, "status")["nodes"]}
    assert nodes == {"a": True, "b": False}
    count_a = len(_segments(config_a, "cam-a"))
    wait_for(lambda: len(_segments(config_a, "cam-a")) >= count_a + 2, 60, what="a recording")
    down = _segments(config_a, "cam-b")
    assert len(down) >= len(b_before)
    assert all(s["unavailable"].startswith("node b down since ") for s in down), down[:2]
    table = run_cli(config_a, "segments", "--camera", "cam-b", *WIDE)
    assert table.returncode == 0 and "unavailable (node b down since " in table.stdout
    refused = httpx.get(f"{url_a}/api/segments/{seg['id']}/file", headers=auth)
    assert refused.status_code == 503
    assert "unavailable (node b down since " in refused.json()["error"]["message"]
    listed = httpx.get(
        f"{url_a}/api/segments",
        params={"camera": "cam-b", "from": WIDE[1], "to": WIDE[3]},
        headers=auth,
    )
    assert listed.status_code == 200
    assert {s["unavailable"][:19] for s in listed.json()} == {"node b down since 2"}
    busy = run_cli(
        config_a, "segment-file", str(seg["id"]), "--out", str(tmp_path / "exports" / "x.mp4")
    )
    assert busy.returncode == 5 and "unavailable (node b down since " in busy.stderr
    unasked = run_cli(config_a, "explain", "--camera", "cam-b", "--at", seg["start"])
    assert unasked.returncode == 5 and "(node b down since " in unasked.stderr, unasked.stderr
    # Node a still serves its own.
    own = _segments(config_a, "cam-a")[-1]
    mine = httpx.get(f"{url_a}/api/segments/{own['id']}/file", headers=auth, timeout=30)
    assert mine.status_code == 200 and len(mine.content) == own["bytes"]

    # Node b back: node a resolves node_offline, and b's footage plays from a again.
    node_b = daemon_factory(config_b)
    wait_for(
        lambda: [
            a
            for a in cli_json(config_a, "alerts")["recent"]
            if a["name"] == "node_offline" and a["labels"] == {"node": "b"}
        ],
        60,
        what="node_offline for node b resolved",
    )
    assert {s["unavailable"] for s in _segments(config_a, "cam-b")} == {None}
    again = httpx.get(f"{url_a}/api/segments/{seg['id']}/file", headers=auth, timeout=30)
    assert again.status_code == 200 and again.content == original
    assert node_b.stop() == 0
    assert node_a.stop() == 0


def test_a_camera_or_volume_another_node_owns_is_a_config_error(
    tmp_path: Path, daemon_factory
) -> None:
    camera = {"name": "door", "url": "demo://", "enabled": False}
    config_a = _node_config(tmp_path, "a", camera)
    daemon_factory(config_a).stop()
    # Node c names a's camera: refused at start, naming the key and the owner (exit 2).
    config_c = _node_config(tmp_path, "c", camera)
    started = subprocess.run(
        [*CCVAULT, "--config", str(config_c), "run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert started.returncode == 2, started.stdout[-2000:] + started.stderr[-2000:]
    assert "cameras[0].name: camera 'door' belongs to node 'a'" in started.stderr
    # And a's volume, under another camera's name.
    text = config_c.read_text().replace('name = "door"', 'name = "hall"')
    config_c.write_text(text.replace('"vol-c"', '"vol-a"').replace("c-hot", "c2-hot"))
    again = subprocess.run(
        [*CCVAULT, "--config", str(config_c), "run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert again.returncode == 2, again.stdout[-2000:] + again.stderr[-2000:]
    assert "storage.volumes[0].name: volume 'vol-a' belongs to node 'a'" in again.stderr
    # Nothing was claimed by the refused node.
    assert run_cli(config_a, "segments", "--camera", "door", *WIDE).returncode == 0
    # Node c with its own camera and volume starts; a reload adding a's camera is rejected.
    config_c.write_text(text)
    node_c = daemon_factory(config_c)
    config_c.write_text(text + '\n[[cameras]]\nname = "door"\nurl = "demo://"\nenabled = false\n')
    node_c.proc.send_signal(signal.SIGHUP)
    rejected = node_c.wait_event("config.rejected", timeout=30)
    assert "cameras[1].name: camera 'door' belongs to node 'a'" in rejected["error"]
    assert node_c.stop() == 0


def test_node_offline_holds_for_each_other_node_that_stopped_beating() -> None:
    health = Health(
        now_ms=100_000,
        volumes=(),
        cameras=(),
        nodes=(NodeHealth("b", False, 40_000), NodeHealth("c", True, 99_000)),
    )
    found = list(node_offline(health, AlertsBase()))
    assert [(o.name, o.labels) for o in found] == [("node_offline", {"node": "b"})]
    assert "node b is down since 1970-01-01T00:00:40" in found[0].summary


def test_each_node_fires_and_resolves_only_its_own_alerts(tmp_path: Path) -> None:
    """Alerts are one site-wide table, but a node's manager carries and resolves only its
    own: b restarting does not resolve what a fires, and a and c may both report b down."""
    catalog = tmp_path / "catalog.sqlite"
    writers = {n: CatalogWriter(catalog, node=n) for n in ("a", "b", "c")}
    b_down = Health(now_ms=100_000, volumes=(), cameras=(), nodes=(NodeHealth("b", False, 1_000),))
    quiet = Health(now_ms=100_000, volumes=(), cameras=())

    def manager(node: str) -> AlertManager:
        return AlertManager(AlertsConfig(), writers[node], Dispatcher([]), 50_000, grace_s=0)

    a, c = manager("a"), manager("c")
    assert [ch.kind for ch in a.evaluate(b_down)] == ["fired"]
    assert [ch.kind for ch in c.evaluate(b_down)] == ["fired"]  # no clash with a's row
    # b starts (nothing fires for it): it leaves a's and c's alerts firing.
    assert manager("b").evaluate(quiet) == []
    with writers["a"].reader() as conn:
        firing = [(r.name, r.node) for r in queries.alerts(conn, 0) if r.resolved_ms is None]
    assert sorted(firing) == [("node_offline", "a"), ("node_offline", "c")]


def test_two_nodes_adding_holds_at_once_lose_none_and_each_keep_its_own_audit_chain(
    tmp_path: Path,
) -> None:
    """Holds are site-wide: two nodes' writers adding holds at the same moment each commit
    theirs (one write transaction at a time). Each node appends to its own audit file (as on
    two machines): each file is one whole chain of that node's records, and each node's
    `audit verify` passes against its own head in the catalog."""
    configs = {
        n: _node_config(
            tmp_path,
            n,
            {"name": f"cam-{n}", "url": "demo://", "enabled": False},
        )
        for n in ("a", "b")
    }
    per_node = 6

    def add_holds(node: str) -> list[int]:
        return [
            run_cli(
                configs[node],
                "hold",
                "add",
                "--from",
                "-2d",
                "--to",
                "-1d",
                "--reason",
                f"{node}{i}",
            ).returncode
            for i in range(per_node)
        ]

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(add_holds, configs))
    assert codes == [[0] * per_node] * 2
    holds = cli_json(configs["a"], "hold", "list")
    reasons = sorted(h["reason"] for h in holds)
    assert reasons == sorted(f"{n}{i}" for n in configs for i in range(per_node))
    for node, config in configs.items():
        verified = run_cli(config, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        records = cli_json(config, "audit", "list", "--action", "hold.add")
        assert sorted(r["seq"] for r in records) == list(range(1, per_node + 1))
        assert sorted(r["details"]["reason"] for r in records) == [
            f"{node}{i}" for i in range(per_node)
        ]


def test_a_node_refuses_an_audit_file_another_node_keeps_its_chain_in(tmp_path: Path) -> None:
    """Two nodes on one machine pointed at one audit file (as the default beside a shared
    catalog file would): the second is refused (exit 2, naming `[audit] path` and the owner)
    before it writes anything, so the first node's chain stays whole."""
    configs = {
        n: _node_config(tmp_path, n, {"name": f"cam-{n}", "url": "demo://", "enabled": False})
        for n in ("a", "b")
    }
    hold = ("hold", "add", "--from", "-2d", "--to", "-1d", "--reason")
    assert run_cli(configs["a"], *hold, "a0").returncode == 0
    shared = configs["b"].read_text().replace(str(tmp_path / "b"), str(tmp_path / "a"))
    configs["b"].write_text(shared)
    refused = run_cli(configs["b"], *hold, "b0")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "[audit] path" in refused.stderr and "audit chain of node 'a'" in refused.stderr
    assert [h["reason"] for h in cli_json(configs["a"], "hold", "list")] == ["a0"]
    verified = run_cli(configs["a"], "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
def test_a_catalog_from_before_nodes_is_claimed_by_the_first_node_to_start(
    tmp_path: Path, daemon_factory
) -> None:
    """The upgrade: a one-box catalog (schema before nodes.sql) with a camera and a firing
    alert becomes node a's when a starts on it — in one transaction, audited `node.claim` —
    and node c may then not name that camera."""
    catalog = tmp_path / "catalog.sqlite"
    before = MIGRATIONS.index(files("ccvault.catalog").joinpath("nodes.sql").read_text())
    with closing(sqlite3.connect(catalog)) as conn:
        for script in MIGRATIONS[:before]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {before}")
        conn.execute("INSERT INTO cameras (name) VALUES ('door')")
        conn.execute(
            "INSERT INTO alerts (name, fingerprint, labels, severity, summary, started_ms)"
            " VALUES ('camera_offline', 'f1', '{\"camera\": \"door\"}', 'critical', 'x', 1)"
        )
        conn.commit()
    catalog.chmod(0o600)
    camera = {"name": "door", "url": "demo://", "enabled": False}
    config_a = _node_config(tmp_path, "a", camera)
    daemon_factory(config_a).stop()
    with closing(sqlite3.connect(catalog)) as conn:
        assert conn.execute("SELECT name, node FROM cameras").fetchall() == [("door", "a")]
        assert conn.execute("SELECT name, node FROM volumes").fetchall() == [("vol-a", "a")]
        assert conn.execute("SELECT node FROM alerts WHERE fingerprint = 'f1'").fetchall() == [
            ("a",)
        ]
    claims = cli_json(config_a, "audit", "list", "--action", "node.claim")
    assert [r["details"] for r in claims] == [
        {"cameras": ["door"], "volumes": [], "alerts": 1, "exports": 0}
    ]
    refused = run_cli(_node_config(tmp_path, "c", camera), "run", timeout=120)
    assert refused.returncode == 2 and "belongs to node 'a'" in refused.stderr


EXPLANATION = {  # a whole answer, as node b would give it for cam-b
    "node": "b",
    "segment_id": 1,
    "camera": "cam-b",
    "start": "1970-01-01T00:00:00.000Z",
    "end": "1970-01-01T00:00:02.000Z",
    "start_ms": 0,
    "end_ms": 2000,
    "action": "keep",
    "rule": "window",
    "bytes": 1000,
    "volume": "vol-b",
    "premature": False,
    "until": None,
    "until_ms": None,
    "target": None,
    "waits_for": None,
    "lock_mode": None,
    "holds": [],
    "activity": False,
    "analysed": True,
    "thinned": False,
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>a login page</html>"),
        (200, b'{"node": "b", "camera": "cam-x"}'),  # not an explanation
        (200, b"[]"),
        (200, json.dumps({**EXPLANATION, "camera": "cam-x"}).encode()),  # of another camera
        (200, json.dumps({**EXPLANATION, "node": "c"}).encode()),  # by another node
    ],
)
def test_a_node_answering_what_is_not_an_explanation_is_not_believed(
    tmp_path: Path, status: int, body: bytes
) -> None:
    """A node asked why its footage is kept may be broken or hostile: an answer that is not an
    explanation of the camera asked about, by that node, is the node failing (exit 5's
    NodeUnavailable), never printed as its word; its 404 is relayed as its word."""
    import http.server
    import threading

    from ccvault.config.node import NodeConfig
    from ccvault.errors import NotFound
    from ccvault.storage import peers
    from ccvault.views.explain import ask

    class Node(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "camera=gone" in self.path:
                code, answer = 404, b'{"error": {"message": "gone at 10:00: deleted"}}'
            elif "camera=fine" in self.path:
                code, answer = 200, json.dumps({**EXPLANATION, "camera": "fine"}).encode()
            else:
                code, answer = status, body
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("ccv_x\n")
    token.chmod(0o600)
    node = NodeConfig(name="a", peer_token_file=token)
    remote = peers.Remote("b", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with pytest.raises(peers.NodeUnavailable, match=r"unavailable \(its answer is not"):
            ask(node, remote, "cam-b", 0)
        with pytest.raises(NotFound, match="gone at 10:00: deleted"):
            ask(node, remote, "gone", 0)
        assert ask(node, remote, "fine", 0).rule == "window"  # a whole answer is believed
    finally:
        server.shutdown()
        server.server_close()
