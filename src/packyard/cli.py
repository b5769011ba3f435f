"""The `packyard` command: serve the repository and manage its state.

Every command takes `--config` and `--data-dir` (also `PACKYARD_CONFIG` and
`PACKYARD_DATA_DIR`), so an operator's commands act on the same state as the
running server.
"""

from __future__ import annotations

import functools
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
    """Print a domain error as one line and exit 1, instead of a traceback."""
    from packyard.errors import PackyardError

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PackyardError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="packyard")
def main() -> None:
    """packyard: a private Python package repository."""


@main.command()
@state_options
@click.option("--host", help="Address to listen on (default 127.0.0.1; env PACKYARD_HOST).")
@click.option("--port", type=int, help="Port to listen on (default 8000; env PACKYARD_PORT).")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Upstream index URL; repeat for several, in priority order after the local store. "
    "'none' for no upstream (default https://pypi.org/simple/; env PACKYARD_UPSTREAM).",
)
@click.option("--workers", type=int, help="Worker processes (default 1; env PACKYARD_WORKERS).")
@reports_errors
def serve(
    config_file: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    upstreams: tuple[str, ...],
    workers: int | None,
) -> None:
    """Run the index, upload, browser and API services in one process."""
    from packyard.server import run

    settings = settings_from(
        config_file, data_dir=data_dir, host=host, port=port, upstreams=upstreams, workers=workers
    )
    run(settings)


@main.command(name="import")
@state_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_errors
def import_command(config_file: Path | None, data_dir: Path | None, directory: Path) -> None:
    """Add every wheel and sdist in DIRECTORY (recursively) to the in-house store.

    Each file is added whole or not at all; a bad file is reported on one line
    and skipped. Exits 1 if any file was refused.
    """
    from packyard.importing import import_with_progress

    report = import_with_progress(settings_from(config_file, data_dir=data_dir), directory)
    for result in [*report.conflicts, *report.errors]:
        click.echo(f"error: {result.line}", err=True)
    click.echo(
        f"{len(report.added)} added, {len(report.skipped)} already present, "
        f"{len(report.conflicts) + len(report.errors)} refused"
    )
    if not report.ok:
        sys.exit(1)
