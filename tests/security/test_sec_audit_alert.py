"""Issue 14, item 2, end to end with the real daemon: a cut made while ccvault was stopped is
alerted at the next start, stays firing across another restart (a restart used to resolve it:
the chain's end lived only in memory), and resolves only once an admin acknowledges it — over
the API here, which a viewer or operator may not do — and the acknowledgment is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Daemon, cli_json, run_cli, wait_for, write_config
from tests.security.audit_tamper import add_holds, lines


@pytest.mark.slow
def test_a_cut_log_alerts_across_restarts_until_an_admin_acknowledges_it(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    config = write_config(tmp_path, [], offline_after=5)
    config.write_text(
        config.read_text() + '\n[alerts]\ncheck_seconds = 1\nclock_sync = "off"\n'
    )  # only the audit alert: the test host may have no time sync at all
    daemon = daemon_factory(config)  # makes the signing key
    add_holds(config, 2)
    assert daemon.stop() == 0  # the chain's end is signed at stop
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"".join(lines(log)[:-2]))  # the two holds' records, gone

    daemon = daemon_factory(config)
    fired = daemon.wait_event("alert.fired", timeout=90, alert="audit_chain_broken")
    assert "tail cut" in fired["summary"]
    assert daemon.stop() == 0

    daemon = daemon_factory(config)
    # A restart carries what was firing for a grace period, then judges it on fresh checks.
    wait_for(
        lambda: daemon.count("alert.grace_ended") or daemon.count("alert.resolved"),
        90,
        what="the restart's grace period to end",
    )
    assert daemon.count("alert.resolved", alert="audit_chain_broken") == 0
    active = cli_json(config, "alerts")["active"]
    assert [a["name"] for a in active] == ["audit_chain_broken"]

    tokens = {
        role: run_cli(config, "user", "add", role, "--role", role).stdout.strip()
        for role in ("operator", "admin")
    }
    url = daemon.wait_event("http.listening", timeout=10)["url"] + "/api/audit/acknowledge"

    def ack(role: str, reason: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {tokens[role]}"}
        return httpx.post(url, json={"reason": reason}, headers=auth, timeout=60)

    assert ack("operator", "not mine to accept").status_code == 403
    assert ack("admin", "").status_code == 422
    done = ack("admin", "restored from the stop-time copy")
    assert done.status_code == 200, done.text
    assert [p["kind"] for p in done.json()["acknowledged"]] == ["tail_cut"]
    daemon.wait_event("alert.resolved", timeout=120, alert="audit_chain_broken")
    [record] = cli_json(config, "audit", "list", "--action", "audit.acknowledged")
    assert record["actor"] == "api:admin"
    assert record["details"]["reason"] == "restored from the stop-time copy"
