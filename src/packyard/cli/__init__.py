"""The `packyard` command: serve the repository and manage its state.

Every command takes `--config` and `--data-dir` (also `PACKYARD_CONFIG` and
`PACKYARD_DATA_DIR`), so an operator's commands act on the same state as the
running server.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from packyard import __version__
from packyard.errors import ConfigurationError
from packyard.settings import Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")


def state_options(command: Callable[P, R]) -> Callable[P, R]:
    """The options every command shares: where the configuration and the state are."""
    command = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory of the database and files (env PACKYARD_DATA_DIR).",
    )(command)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML configuration file (env PACKYARD_CONFIG).",
    )(command)


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """Load the settings, turning a configuration problem into a clean CLI error."""
    try:
        return load_settings(config_file, overrides)
    except ConfigurationError as exc:
        raise click.UsageError(exc.message) from exc


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Print a domain error as one line and exit 1, instead of a traceback.

    Something not found is told with the store it was looked for in: a
    command pointed at the wrong store must not look like a missing user."""
    from packyard.cli.store import remembered_store
    from packyard.errors import NotFound, PackyardError

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PackyardError as exc:
            message = exc.message
            store = remembered_store()
            if isinstance(exc, NotFound) and store is not None:
                message = f"{message} Looked in {store}."
            click.echo(f"error: {message}", err=True)
            sys.exit(1)

    return wrapper


# Every command, and the module attribute that holds it. A command's module is
# imported when the command runs: each pulls in a share of the server (the
# whole chain for `import`), and importing all of them cost every command,
# even `packyard user add`, over 2 s of start-up.
_COMMANDS = {
    "serve": "serve:serve",
    "init": "migrate:init_command",
    "migrate": "migrate:migrate_command",
    "verify": "verify:verify_command",
    "prefetch": "prefetch:prefetch",
    "import": "importing:import_command",
    "user": "accounts:user",
    "group": "accounts:group",
    "token": "accounts:token",
    "owner": "accounts:owner",
    "whoami": "accounts:whoami",
    "yank": "governance:yank",
    "unyank": "governance:unyank",
    "delete": "governance:delete",
    "project": "governance:project",
    "name": "governance:name",
    "policy": "policies:policy",
    "advisories": "advisories:advisories",
    "attestations": "attestations:attestations",
}


class _Commands(click.Group):
    """The commands of `_COMMANDS`, each module imported when its command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(f"packyard.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="packyard")
def main() -> None:
    """packyard: a private Python package repository."""
