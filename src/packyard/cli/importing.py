"""`packyard import`: the importer run from the command line, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from click._termui_impl import ProgressBar

from packyard.cli import reports_errors, settings_from, state_options
from packyard.compose import prepare_state
from packyard.db.engine import session_factory_for
from packyard.publish.importer import ImportReport, ImportResult, find_distributions, import_files
from packyard.settings import Settings
from packyard.storage.location import FILES, open_blob_storage


def import_with_progress(settings: Settings, directory: Path) -> ImportReport:
    """Import every distribution under `directory` into the store of `settings`."""
    engine = prepare_state(settings)
    try:
        paths = find_distributions(directory)
        store = open_blob_storage(settings).store(FILES)
        sessions = session_factory_for(engine)
        # The bar goes to stderr so that stdout keeps only the summary.
        bar: ProgressBar[int] = click.progressbar(
            length=len(paths), label="importing", file=sys.stderr
        )
        with bar:

            def advance(_: ImportResult) -> None:
                bar.update(1)

            return anyio.run(import_files, paths, sessions, store, advance)
    finally:
        engine.dispose()


@click.command(name="import")
@state_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_errors
def import_command(config_file: Path | None, data_dir: Path | None, directory: Path) -> None:
    """Add every wheel and sdist in DIRECTORY (recursively) to the in-house store.

    Each file is added whole or not at all; a bad file is reported on one line
    and skipped. Exits 1 if any file was refused.
    """
    report = import_with_progress(settings_from(config_file, data_dir=data_dir), directory)
    for result in [*report.conflicts, *report.errors]:
        click.echo(f"error: {result.line}", err=True)
    click.echo(
        f"{len(report.added)} added, {len(report.skipped)} already present, "
        f"{len(report.conflicts) + len(report.errors)} refused"
    )
    if not report.ok:
        sys.exit(1)
