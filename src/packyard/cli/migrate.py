"""`packyard init` and `packyard migrate`: create a store, bring its schema up to date.

`packyard serve` migrates at start unless `--no-migrate`; a site with many
replicas runs `migrate` once per upgrade instead (a Kubernetes Job), and
starts the replicas with `--no-migrate`. Running it from several places at
once is safe (`db.engine.migrate`).

Every other command refuses to act where there is no store (`cli/store.py`).
`init` makes one on purpose; `migrate` makes one too, as a deployment's
first run on a fresh database needs, and says so.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from packyard.cli import reports_errors, settings_from, state_options
from packyard.cli.store import describe_store, has_store, remember
from packyard.db.engine import create_database_engine, current_revision, migrate
from packyard.settings import Settings


@click.command("init")
@state_options
@reports_errors
def init_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Create a new, empty store: the data directory and the database schema.

    Other commands (but `serve`) act only on an existing store. On a store
    that exists already this changes nothing and says so.
    """
    settings = settings_from(config_file, data_dir=data_dir)
    remember(settings)
    if has_store(settings):
        click.echo(f"There is a store already: {describe_store(settings)}. Nothing changed.")
        return
    revision, _ = _migrate(settings)
    click.echo(f"Created a new store: {describe_store(settings)}, schema revision {revision}.")


@click.command("migrate")
@state_options
@reports_errors
def migrate_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Apply the database migrations and exit."""
    settings = settings_from(config_file, data_dir=data_dir)
    remember(settings)
    existed = has_store(settings)
    after, applied = _migrate(settings)
    if applied and not existed:  # of racers on a fresh database, the one that migrated
        click.echo(f"There was no store: created {describe_store(settings)}.")
    if applied:
        # Read inside the migration's lock: another process may have migrated first.
        click.echo(f"Migrated the schema to revision {after} (applied {', '.join(applied)}).")
    else:
        click.echo(f"The schema is up to date (revision {after}).")


def _migrate(settings: Settings) -> tuple[str | None, list[str]]:
    """Create the data directory and migrate the database: (revision now, applied).

    Raises:
        click.ClickException: the database cannot be migrated.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    engine = create_database_engine(url)
    try:
        applied = migrate(engine)
        return current_revision(engine), applied
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise click.ClickException(f"the database {shown} cannot be migrated: {exc}") from exc
    finally:
        engine.dispose()
