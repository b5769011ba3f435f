"""`packyard import`: the importer run from the command line, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from click._termui_impl import ProgressBar

from packyard.compose import prepare_state
from packyard.db.engine import session_factory_for
from packyard.publish.importer import ImportReport, ImportResult, find_distributions, import_files
from packyard.settings import Settings
from packyard.storage.filesystem import FilesystemBlobStore


def import_with_progress(settings: Settings, directory: Path) -> ImportReport:
    """Import every distribution under `directory` into the store of `settings`."""
    engine = prepare_state(settings)
    try:
        paths = find_distributions(directory)
        store = FilesystemBlobStore(settings.blob_dir)
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
