"""`packyard migrate`: bring the database schema up to date, then exit.

`packyard serve` migrates at start unless `--no-migrate`; a site with many
replicas runs this once per upgrade instead (a Kubernetes Job), and starts
the replicas with `--no-migrate`. Running it from several places at once is
safe (`db.engine.migrate`).
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from packyard.cli import reports_errors, settings_from, state_options
from packyard.db.engine import create_database_engine, current_revision, migrate


@click.command("migrate")
@state_options
@reports_errors
def migrate_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Apply the database migrations and exit."""
    settings = settings_from(config_file, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    engine = create_database_engine(url)
    try:
        applied = migrate(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise click.ClickException(f"the database {shown} cannot be migrated: {exc}") from exc
    finally:
        engine.dispose()
    if applied:
        # Read inside the migration's lock: another process may have migrated first.
        click.echo(f"Migrated the schema to revision {after} (applied {', '.join(applied)}).")
    else:
        click.echo(f"The schema is up to date (revision {after}).")
