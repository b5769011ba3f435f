"""`packyard import`: the importer run from the command line, with a progress bar.

A file that would create a new project passes the same name guard as an
upload, over the same upstreams as the server's (from the settings, or
`--upstream`), uncurated as `compose.build_chain` hands them to the upload
service: a name a policy hides is still a public name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from click._termui_impl import ProgressBar

from packyard.cli import reports_errors, settings_from, state_options
from packyard.compose import cached_upstreams, prepare_state
from packyard.db.engine import session_factory_for
from packyard.publish.importer import ImportReport, ImportResult, find_distributions, import_files
from packyard.publish.name_guard import NameGuard
from packyard.settings import Settings
from packyard.storage.location import FILES, open_blob_storage


def import_with_progress(settings: Settings, directory: Path) -> ImportReport:
    """Import every distribution under `directory` into the store of `settings`."""
    engine = prepare_state(settings)
    try:
        paths = find_distributions(directory)
        storage = open_blob_storage(settings)
        sessions = session_factory_for(engine)
        # The bar goes to stderr so that stdout keeps only the summary.
        bar: ProgressBar[int] = click.progressbar(
            length=len(paths), label="importing", file=sys.stderr
        )
        with bar:

            def advance(_: ImportResult) -> None:
                bar.update(1)

            async def run() -> ImportReport:
                upstreams = cached_upstreams(settings, sessions, storage)
                try:
                    return await import_files(
                        paths,
                        sessions,
                        storage.store(FILES),
                        advance,
                        name_guard=NameGuard(sessions, upstreams),
                        limits=settings.upload,
                    )
                finally:
                    for upstream in upstreams:
                        await upstream.aclose()

            return anyio.run(run)
    finally:
        engine.dispose()


@click.command(name="import")
@state_options
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Upstream index URL whose public names new projects may not take; repeat for "
    "several. 'none' for no upstream (default: the configuration's, as `serve`).",
)
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_errors
def import_command(
    config_file: Path | None, data_dir: Path | None, upstreams: tuple[str, ...], directory: Path
) -> None:
    """Add every wheel and sdist in DIRECTORY (recursively) to the in-house store.

    Each file is added whole or not at all; a bad file is reported on one line
    and skipped. A file of a new project passes the name guard of uploads: a
    standard-library name, or the name (or a look-alike) of a public project
    on an upstream, is refused unless an administrator allowed it with
    `packyard name allow`. Exits 1 if any file was refused.
    """
    settings = settings_from(config_file, data_dir=data_dir, upstreams=upstreams)
    report = import_with_progress(settings, directory)
    for result in [*report.conflicts, *report.errors]:
        click.echo(f"error: {result.line}", err=True)
    for result in report.refused:
        click.echo(f"refused: {result.line}", err=True)
    refused = len(report.conflicts) + len(report.refused) + len(report.errors)
    click.echo(
        f"{len(report.added)} added, {len(report.skipped)} already present, {refused} refused"
    )
    if not report.ok:
        sys.exit(1)
