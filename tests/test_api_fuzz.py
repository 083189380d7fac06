"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis).

The schema is fetched from the running server at test time, so every operation anyone adds is
fuzzed without touching this file. The server is the daemon's own (`ApiServer`) with export
jobs, over a catalog with some footage in it; half the time a camera or a time parameter gets a
real value (schemathesis dictionaries), so requests also get past "no such camera" into the
code that reads footage. schemathesis runs as its CLI in a subprocess: its pytest plugin wants
the schema at collection time, before any server exists.

Each run draws new examples (a run finds what earlier ones missed); a failure prints its seed:
`CCVAULT_FUZZ_SEED=<seed> pytest tests/test_api_fuzz.py` repeats it, and
`CCVAULT_FUZZ_EXAMPLES=200` fuzzes harder than the suite's quick pass.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ccvault.api.auth import auth_state
from ccvault.api.server import ApiServer
from ccvault.config.model import HttpConfig
from ccvault.evidence.jobs import ExportJobs
from ccvault.recorder.ffmpeg import ffmpeg_binary
from ccvault.timefmt import utc_text
from tests.api_peer import free_port, serve
from tests.conftest import write_config
from tests.retention_seed import seed

# Per operation and phase: the suite's run stays well under a minute on 2 cores.
MAX_EXAMPLES = int(os.environ.get("CCVAULT_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("CCVAULT_FUZZ_SEED")
# Parameter names the routes use for cameras and times, wherever they appear.
CAMERA_KEYS = ("camera", "path.name", "body.camera")
TIME_KEYS = ("from", "to", "at", "after", "before", "body.from", "body.to", "body.until")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def st_command() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


def st_config(path: Path, now_ms: int) -> Path:
    """Real cameras and times, offered half the time; the rest stays random."""
    times = ["now", "-15m", "-1h", utc_text(now_ms - 600_000), utc_text(now_ms - 594_000)]
    lines = [
        "[dictionaries.cameras]",
        'values = ["door"]',
        "[dictionaries.times]",
        f"values = {json.dumps(times)}",
        "[parameters]",
    ]
    lines += [f'"{key}" = {{ dictionary = "cameras", probability = 0.5 }}' for key in CAMERA_KEYS]
    lines += [f'"{key}" = {{ dictionary = "times", probability = 0.5 }}' for key in TIME_KEYS]
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_seconds() -> float:
    """CPU time of this process (the API server's threads) and of its finished children (the
    fuzzer, once subprocess.run has waited for it)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_fuzzing_the_schema_finds_no_server_errors(tmp_path: Path) -> None:
    st = st_command()
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    now = int(time.time() * 1000)
    seed(
        config,
        [
            {"camera": "door", "start_ms": now - 600_000 + i * 2000, "activity": i == 1}
            for i in range(3)
        ],
        tmp_path / "cache",
    )
    with serve(config) as api:
        cfg = api.ctx.config.model_copy(
            update={"http": HttpConfig(listen=f"127.0.0.1:{free_port()}")}
        )
        jobs = ExportJobs(cfg, api.ctx.writer, api.ctx.volumes, api.ctx.clock, ffmpeg_binary(cfg))
        server = ApiServer(replace(api.ctx, config=cfg, exports=jobs))
        # The fuzzer signs in with made-up tokens on purpose; past the lockout they would all
        # answer 429, and the code behind a 401 would go untested.
        auth_state(server.app).limiter.allow(1_000_000)
        server.start()
        try:
            started = cpu_seconds()
            result = subprocess.run(
                [
                    *st,
                    "--config-file",
                    str(st_config(tmp_path / "st.toml", now)),
                    "run",
                    f"{server.url}/api/openapi.json",
                    "-H",
                    f"Authorization: Bearer {api.tokens['admin']}",
                    "--checks",
                    ",".join(CHECKS),
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--request-timeout",
                    "30",
                    # One worker: with two threads, hypothesis's ast.parse can hit CPython 3.11's
                    # "AST constructor recursion depth mismatch" (gh-106905), seen under load.
                    "--workers",
                    "1",
                    "--no-color",
                    *(["--seed", SEED] if SEED else []),
                ],
                capture_output=True,
                text=True,
                timeout=150,
                cwd=tmp_path,
            )
            cpu = cpu_seconds() - started
        finally:
            server.stop()
            jobs.stop()
    report = result.stdout[-12_000:] + result.stderr[-3_000:]
    assert result.returncode == 0, report
    operations = sum(len(ops) for ops in server.app.openapi()["paths"].values())
    tested = re.search(r"Tested:\s+(\d+)", result.stdout)
    assert tested and int(tested.group(1)) == operations, report
    # The budget is the work done (CPU seconds of the fuzzer and of the server it fuzzes), not
    # the wall-clock time: a busy machine stretches the latter, never the former.
    assert cpu < 120 or "CCVAULT_FUZZ_EXAMPLES" in os.environ, f"fuzzing took {cpu:.0f} CPU s"
