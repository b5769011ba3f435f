"""The command table: every command is found by its name, and a command's
module is imported only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from packyard.cli import main


def test_every_listed_command_loads_under_its_own_name() -> None:
    context = click.Context(main)
    names = main.list_commands(context)
    assert "serve" in names
    assert "user" in names
    for name in names:
        command = main.get_command(context, name)
        assert command is not None
        assert command.name == name
    assert main.get_command(context, "no-such-command") is None


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("serve", "import", "user", "yank", "advisories", "attestations", "whoami"):
        assert f"  {name} " in result.output


def test_an_account_command_does_not_import_the_server() -> None:
    script = (
        "import sys\n"
        "from packyard.cli import main\n"
        "main(['user', '--help'], standalone_mode=False)\n"
        "print(sorted(m for m in ('packyard.compose', 'packyard.app') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"
