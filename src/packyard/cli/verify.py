"""`packyard verify`: check the blob storage against the database (after a restore)."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from click._termui_impl import ProgressBar

from packyard.cli import reports_errors, settings_from, state_options
from packyard.cli.store import has_store, no_store_message, remember
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.storage.location import FILES, open_blob_storage
from packyard.storage.verify import Expected, expected_blobs, verify_blobs


@click.command("verify")
@state_options
@reports_errors
def verify_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Check that every stored file and METADATA has its blob, with the right sha256.

    Prints each missing, damaged or unreadable blob and exits 1 if there is any.
    """
    settings = settings_from(config_file, data_dir=data_dir)
    if not has_store(settings):
        raise click.ClickException(no_store_message(settings))
    remember(settings)
    engine = create_database_engine(settings.resolved_database_url)
    try:
        storage = open_blob_storage(settings)
        anyio.run(storage.check)
        expected = expected_blobs(session_factory_for(engine))
        # The bar goes to stderr so that stdout keeps only the findings and the summary.
        bar: ProgressBar[int] = click.progressbar(
            length=len(expected), label="verifying", file=sys.stderr
        )

        def advance(_: Expected) -> None:
            bar.update(1)

        with bar:
            report = anyio.run(verify_blobs, storage.store(FILES), expected, advance)
    finally:
        engine.dispose()
    for finding in report.findings:
        click.echo(finding.describe())
    where = storage.url
    if report.ok:
        click.echo(f"All {report.checked} blobs in {where} are present and intact.")
        return
    click.echo(
        f"{len(report.findings)} of {report.checked} blobs in {where} are missing or damaged."
    )
    sys.exit(1)
