"""Every command explains itself, and the conventions hold for all of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ccvault.catalog.schema import MIGRATIONS, _statements
from tests.conftest import cli_json, run_cli, write_config

COMMANDS = [
    ["run"],
    ["check-config"],
    ["status"],
    ["segments"],
    ["motion"],
    ["analyze"],
    ["reconcile"],
    ["verify"],
    ["import"],
    ["purge"],
    ["explain"],
    ["hold"],
    ["hold", "add"],
    ["hold", "list"],
    ["hold", "release"],
    ["hold", "rebuild"],
    ["audit"],
    ["audit", "list"],
    ["audit", "verify"],
    ["audit", "acknowledge"],
    ["backup"],
    ["user"],
    ["user", "add"],
    ["user", "list"],
    ["user", "revoke"],
    ["user", "rotate"],
    ["user", "role"],
    ["export"],
    ["verify-export"],
    ["signing-key"],
    ["volume"],
    ["volume", "init"],
    ["volume", "replace"],
    ["alerts"],
    ["systemd-dropin"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = run_cli(None, *command, "--help")
    assert result.returncode == 0
    assert "Usage: ccvault" in result.stdout
    summary = result.stdout.split("\n\n")[1].strip()
    assert len(summary) > 20, f"{command} needs a real description"


def test_usage_errors_exit_2_in_the_ccvault_format() -> None:
    result = run_cli(None, "segments", "--camera")
    assert result.returncode == 2
    assert result.stderr.startswith("ccvault: error: usage: ")
    assert run_cli(None, "no-such-command").returncode == 2


def test_json_goes_alone_to_stdout(tmp_path) -> None:
    from tests.conftest import cli_json, write_config

    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    assert run_cli(config, "reconcile").returncode == 0  # creates the catalog
    assert cli_json(config, "segments", "--camera", "door", "--from", "-5m", "--to", "now") == []
    result = run_cli(config, "segments", "--camera", "door", "--from", "now", "--to", "-5m")
    assert result.returncode == 2
    assert "ccvault: error: --to: must be later than --from" in result.stderr


def test_reading_commands_never_create_a_catalog(tmp_path) -> None:
    from tests.conftest import write_config

    config = write_config(tmp_path, [{"name": "door", "url": "demo://"}])
    for args in (["status"], ["segments", "--camera", "door", "--from", "-1h", "--to", "now"]):
        result = run_cli(config, *args)
        assert result.returncode == 3, result.stderr
        assert "catalog.sqlite: does not exist" in result.stderr
    assert not (tmp_path / "catalog.sqlite").exists()


def test_reading_commands_upgrade_a_catalog_from_an_older_ccvault(tmp_path: Path) -> None:
    """After an upgrade, `status` and friends work before the daemon has run again."""
    config = write_config(tmp_path, [{"name": "door", "url": "demo://", "enabled": False}])
    conn = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    for script in MIGRATIONS[:2]:  # schema version 2: before retention existed
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO meta VALUES ('catalog_id', 'c1')")
    conn.close()
    status = cli_json(config, "status")
    assert status["retention"]["active_holds"] == 0
    assert cli_json(config, "hold", "list") == []


def test_every_command_is_found_where_the_lazy_table_says() -> None:
    """The top-level group imports a command's module only when the command is used
    (`ccvault.cli.COMMANDS`): every command a module defines must be in the table, under that
    module, or `ccvault NAME` would say "no such command"."""
    from importlib import import_module

    from ccvault import cli

    for module in sorted(set(cli.COMMANDS.values())):
        import_module(f"ccvault.cli.{module}")
    defined = {name: cmd.callback.__module__ for name, cmd in cli.cli.commands.items()}
    assert defined == {name: f"ccvault.cli.{m}" for name, m in cli.COMMANDS.items()}
