"""Why a camera's footage at an instant is kept and until when, what will happen to it, or why
there is none: what `ccvault explain` and `GET /api/explain` answer.

Only the node that records a camera can answer: its policy decides what it keeps, and its
audit log says what it purged (another node's log would say "never recorded"). So a node
answers for its own cameras, and asks the owner for another node's (`storage.peers.explain`);
either way the answer names the node that gave it.
"""

from __future__ import annotations

import sqlite3

from pydantic import ValidationError

from ccvault.catalog.audit import audit_log
from ccvault.catalog.nodes import camera_nodes
from ccvault.config.model import Config
from ccvault.config.node import NodeConfig
from ccvault.errors import NotFound
from ccvault.retention import candidates
from ccvault.retention.gone import why_gone
from ccvault.retention.planner import decide
from ccvault.retention.pressure import archive_room, measure
from ccvault.storage import peers
from ccvault.storage.volumes import Volume
from ccvault.timefmt import local_text, utc_text, utc_text_or_none
from ccvault.views.models import ExplanationOut


def owner_elsewhere(conn: sqlite3.Connection, camera: str, me: str) -> str | None:
    """The other node that records the camera, None when it is this one's (or no node's)."""
    owner = camera_nodes(conn).get(camera)
    return owner if owner is not None and owner != me else None


def explain(
    config: Config,
    conn: sqlite3.Connection,
    volumes: list[Volume],
    camera: str,
    at_ms: int,
    now_ms: int,
) -> ExplanationOut:
    """This node's answer for its camera at `at_ms` (`ccvault explain --json`); NotFound
    saying why when no footage holds that instant (deleted: when, by whom, under which rule;
    not yet; never recorded), or when the camera is not this node's to explain."""
    sc = candidates.scope(conn, config, volumes)
    if camera not in sc.camera_ids and config.camera(camera) is None:
        raise NotFound(f"camera {camera}", "not in the config")
    seg = candidates.at_instant(conn, sc, camera, at_ms) if camera in sc.camera_ids else None
    if seg is None:
        gone = why_gone(audit_log(config).records(strict=False), camera, at_ms, now_ms, config.tz)
        raise NotFound(f"{camera} at {local_text(at_ms, config.tz)}", gone.sentence(config.tz))
    protections = candidates.protections(conn)
    covers = candidates.access_covers(conn, config, now_ms)
    archives = archive_room(measure(config, volumes, conn, now_ms))
    decision = decide(seg, sc.policies[camera], protections, now_ms, archives, covers)
    holds = [p for p in protections if p.active(now_ms) and p.covers(seg)]
    plan = decision.as_json()
    return ExplanationOut(
        **plan,
        start=utc_text(seg.start_ms),
        end=utc_text(seg.end_ms),
        until=utc_text_or_none(plan["until_ms"]),
        node=config.node.name,
        holds=[h.rule for h in holds],
        activity=seg.activity,
        analysed=seg.analysed,
        thinned=seg.thinned,
    )


def ask(node: NodeConfig, remote: peers.Remote, camera: str, at_ms: int) -> ExplanationOut:
    """The owner's answer, believed only as an explanation of that camera by that node: any
    other answer is the node failing (NodeUnavailable), never printed as its word."""
    answer = peers.explain(node, remote, camera, at_ms)
    try:
        told = ExplanationOut.model_validate(answer)
    except ValidationError:
        told = None
    if told is None or (told.camera, told.node) != (camera, remote.node):
        raise peers.NodeUnavailable(
            f"node {remote.node}", "unavailable (its answer is not an explanation of that camera)"
        )
    return told
