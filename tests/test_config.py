"""Config errors name the file and key, exit 2, and start nothing; the example stays in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccvault.config import example as config_doc
from ccvault.config.catalog_target import PgCatalog
from ccvault.config.loading import load
from ccvault.errors import ConfigError
from tests.conftest import REPO, run_cli, write_config

BASE = """
[storage]
catalog = "c.sqlite"
[[storage.volumes]]
name = "hot"
path = "hot"
"""

PG_BASE = """
[storage]
catalog = "postgresql://ccv@db01/cat"
state_dir = "state"
[[storage.volumes]]
name = "hot"
path = "hot"
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            BASE + '[[cameras]]\nname = "a"\nurl = "demo://"\n[[cameras]]\nname = "b"\n'
            'url = "rtp://10.0.0.1/x"\n',
            "cameras[1].url: unsupported scheme 'rtp'",
        ),
        (
            BASE + "[recording]\nsegment_seconds = 1\n",
            "recording.segment_seconds: must be at least 2",
        ),
        (BASE + "[recording]\nsegment_secs = 10\n", "recording.segment_secs: unknown key"),
        (
            BASE + '[[cameras]]\nname = "a"\nurl = "demo://"\n[[cameras]]\nname = "a"\n'
            'url = "demo://"\n',
            "cameras[1].name: duplicate camera name 'a'",
        ),
        ('timezone = "Mars/Olympus"\n' + BASE, "timezone: unknown time zone 'Mars/Olympus'"),
        (
            'timezone = "UTC"\n[storage]\ncatalog = "c"\n',
            "storage.volumes: required key is missing",
        ),
        (
            BASE + '[[cameras]]\nname = "Bad Name"\nurl = "demo://"\n',
            "cameras[0].name: must be lower-case letters, digits, - and _",
        ),
        (
            BASE + '[recording]\nsegment_seconds = "ten"\n',
            "segment_seconds: must be a whole number",
        ),
        (
            BASE + '[http]\nlisten = "localhost"\n',
            "http.listen: must be host:port, or [IPv6 address]:port",
        ),
        (BASE + "[recording\n", "not valid TOML"),
        (
            BASE + "[retention]\ncontinuous_days = 40\n",
            "retention.continuous_days: must not exceed motion_days (40.0 > 31.0)",
        ),
        (
            BASE + "[retention]\nmotion_days = 60\n",
            "retention.motion_days: must not exceed max_days (60.0 > 31.0)",
        ),
        (
            BASE + '[[cameras]]\nname = "a"\nurl = "demo://"\n[cameras.retention]\nmin_days = 20\n',
            "cameras[0].retention.min_days: must not exceed continuous_days (20.0 > 14.0)",
        ),
        (
            BASE + '[[cameras]]\nname = "a"\nurl = "demo://"\n[cameras.retention]\nmax_dayz = 2\n',
            "cameras[0].retention.max_dayz: unknown key",
        ),
        (BASE + "[retention]\nthin_after_days = 20\n", "retention.thin_after_days:"),
        (
            BASE + "[retention]\npressure_floor_hours = 800\n",
            "retention.pressure_floor_hours: must not exceed max_days (800 h > 744 h)",
        ),
        (
            BASE + "[retention]\npressure_floor_hours = -1\n",
            "retention.pressure_floor_hours: must be at least 0",
        ),
        (
            BASE
            + '[[cameras]]\nname = "a"\nurl = "demo://"\n[cameras.retention]\n'
            + "max_days = 0.5\nmotion_days = 0.5\ncontinuous_days = 0.5\nmin_days = 0\n",
            "cameras[0].retention.pressure_floor_hours: must not exceed max_days (24 h > 12 h)",
        ),
        (
            BASE.replace('path = "hot"', 'path = "hot"\nreserve_free_bytes = "lots"'),
            "storage.volumes[0].reserve_free_bytes: not a size: 'lots'",
        ),
        (
            BASE.replace('path = "hot"', 'path = "hot"\nreserve_free_percent = 60'),
            "storage.volumes[0].reserve_free_percent: must be at most 50",
        ),
        (
            BASE.replace('path = "hot"', 'path = "."\nreserve_free_bytes = "1000 TiB"'),
            "storage.volumes[0].reserve_free_bytes: the reserve",
        ),
        (
            PG_BASE.replace("ccv@", "ccv:hunter2@"),
            "storage.catalog: the URL holds a password: put it in storage.catalog_password_file",
        ),
        (
            PG_BASE.replace("db01/cat", "db01/cat?password=hunter2"),
            "storage.catalog: the URL holds a password parameter",
        ),
        (
            PG_BASE.replace('state_dir = "state"\n', ""),
            "storage.state_dir: required when catalog is a PostgreSQL URL",
        ),
        (PG_BASE.replace("postgresql:", "mysql:"), "storage.catalog: 'mysql' is not a catalog"),
        (
            BASE.replace("[[storage", 'catalog_sslmode = "require"\n[[storage'),
            "storage.catalog_sslmode: only for a PostgreSQL catalog",
        ),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    result = run_cli(path, "check-config")
    assert result.returncode == 2
    assert result.stderr.startswith(f"ccvault: error: {path}: ")
    assert message in result.stderr
    assert not any(raw in result.stderr for raw in ("should match pattern", "Input should", "^"))
    assert not (tmp_path / "c.sqlite").exists(), "nothing may start on a bad config"


def test_run_refuses_bad_config_and_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + '[[cameras]]\nname = "a"\nurl = "rtp://x/y"\n')
    result = run_cli(path, "run", timeout=30)
    assert result.returncode == 2
    assert "cameras[0].url: unsupported scheme 'rtp'" in result.stderr
    assert not (tmp_path / "hot").exists()


def test_config_from_environment_then_missing_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"name": "a", "url": "demo://"}])
    ok = run_cli(None, "check-config", env={"CCVAULT_CONFIG": str(path)})
    assert ok.returncode == 0, ok.stderr
    assert str(path) in ok.stdout
    missing = run_cli(None, "check-config", env={"CCVAULT_CONFIG": str(tmp_path / "nope.toml")})
    assert missing.returncode == 2
    assert "nope.toml: no such config file" in missing.stderr


def test_world_readable_config_with_password_warns_without_leaking(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"name": "door", "url": "rtsp://admin:hunter22@127.0.0.1/s"}])
    path.chmod(0o644)
    result = run_cli(path, "check-config")
    assert result.returncode == 0
    assert "other users can read it" in result.stderr
    assert "hunter22" not in result.stderr + result.stdout


def test_password_file_is_used_and_needs_a_user(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t!@\n")
    secret.chmod(0o600)
    path = write_config(
        tmp_path, [{"name": "door", "url": "rtsp://viewer@127.0.0.1:554/s", "password_file": "pw"}]
    )
    camera = load(path).config.cameras[0]
    assert camera.source_url() == "rtsp://viewer:s3cr3t%21%40@127.0.0.1:554/s"
    no_user = write_config(
        tmp_path,
        [{"name": "door", "url": "rtsp://127.0.0.1/s", "password_file": "pw"}],
        name="nouser.toml",
    )
    result = run_cli(no_user, "check-config")
    assert result.returncode == 2
    assert "cameras[0].password_file: the url names no user" in result.stderr


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(BASE)
    cfg = load(path).config
    assert cfg.storage.catalog == tmp_path / "c.sqlite"
    assert cfg.storage.volumes[0].path == tmp_path / "hot"


def test_a_postgresql_catalog_keeps_this_nodes_files_in_state_dir(tmp_path: Path) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(
        PG_BASE.replace("[[storage", 'catalog_password_file = "pgpass"\n[[storage', 1).replace(
            "[[storage", 'catalog_sslmode = "verify-full"\n[[storage', 1
        )
    )
    passfile = tmp_path / "pgpass"
    with pytest.raises(ConfigError, match=r"catalog_password_file: .*No such file"):
        load(path)
    passfile.write_text("db01:5432:cat:ccv:secret\n")
    passfile.chmod(0o644)  # libpq would skip it without a word
    with pytest.raises(ConfigError, match="readable by others \\(mode 644\\): 0600"):
        load(path)
    passfile.chmod(0o600)
    cfg = load(path).config
    assert cfg.catalog_target == PgCatalog(
        "postgresql://ccv@db01/cat", tmp_path / "pgpass", "verify-full", None
    )
    state = tmp_path / "state"  # relative to the config file, as every path
    assert (cfg.audit_path, cfg.signing_key_path, cfg.export_dir) == (
        state / "audit.jsonl",
        state / "signing-key.pem",
        state / "exports",
    )
    assert cfg.lock_base == state / "catalog"
    sqlite = tmp_path / "sqlite.toml"
    sqlite.write_text(BASE)
    assert load(sqlite).config.state_dir == tmp_path  # the catalog file's directory


def test_example_config_documents_the_model_and_loads(tmp_path: Path) -> None:
    example = REPO / "config" / "ccvault.example.toml"
    assert example.read_text() == config_doc.render(), (
        "config/ccvault.example.toml is stale: python -m ccvault.config.example > it"
    )
    secret = tmp_path / "pw"
    secret.write_text("pw")
    copy = tmp_path / "example.toml"
    text = example.read_text().replace("/etc/ccvault/secrets/server-room-door", str(secret))
    for key in ("s3-access-key", "s3-secret-key"):  # the s3 volume's key files
        text = text.replace(f"/etc/ccvault/secrets/{key}", str(secret))
    copy.write_text(text)
    loaded = load(copy).config
    assert [c.name for c in loaded.cameras] == ["server-room-door", "lab"]


def test_demo_config_is_valid() -> None:
    cfg = load(REPO / "config" / "demo.toml").config
    assert cfg.cameras[0].url.startswith("demo://")
    assert "demo-data" in str(cfg.storage.catalog)


def test_every_key_in_the_example_has_a_complete_comment() -> None:
    """Each key of the generated example (set or commented out) follows a comment that says
    what it means and its default (or that it is required, or which default it overrides):
    never `# None Default: …`, never a bare key."""
    lines = config_doc.render().splitlines()
    key = re.compile(r"^(# )?[a-z_][a-z0-9_]* = ")
    complete = re.compile(
        r"^# (?!None\b)[\w\"'(\[…].{2,}?"
        r"( (Default: .+\.|Required\.)( Range: .+\.| At least \d+\.)?"
        r"| This camera's own; \[\w+\] has the default\.)$"
    )
    keys = [i for i, line in enumerate(lines) if key.match(line)]
    assert len(keys) > 100
    incomplete = [
        f"{lines[i - 1]!r} before {lines[i]!r}" for i in keys if not complete.match(lines[i - 1])
    ]
    assert incomplete == []


def test_a_key_without_a_description_cannot_be_rendered() -> None:
    from pydantic import Field

    from ccvault.config.fields import Model

    class Undocumented(Model):
        documented: int = Field(1, description="Has a meaning.")
        bare: int = 2

    with pytest.raises(ValueError, match=r"Undocumented\.bare has no description"):
        config_doc._fields(Undocumented, skip=set(), values={})


def test_the_motion_table_alone_gives_what_the_whole_config_gives(tmp_path: Path) -> None:
    """`ccvault analyze` validates [motion] alone (`motion_of_file`); the daemon, the whole
    config. Both must give the same settings, people counting and workers included."""
    from ccvault.config.policy import MotionSettings, motion_of_file

    path = tmp_path / "ccvault.toml"
    path.write_text(
        BASE
        + "[motion]\nthreshold = 40\nworkers = 3\nmasks = [[[0, 0], [1, 0], [1, 0.2]]]\n"
        + '[[cameras]]\nname = "a"\nurl = "demo://"\n'
    )
    settings = motion_of_file(path)
    assert settings == load(path).config.motion_for(None)
    assert settings.threshold == 40 and settings.people is False and len(settings.masks) == 1
    assert settings != MotionSettings()
