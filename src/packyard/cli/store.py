"""Which store a command acts on, and no store made by accident.

A store is a database with packyard's schema (SQLite in the data directory by
default), with its blob storage. Run from the wrong directory, a command
would find no `./packyard-data` and, before this module, make an empty one
and act on it ("There is no user named 'alice'"). So:

- `open_store` (every command that reads or changes the store) refuses when
  there is no store, naming where it looked and how to point elsewhere;
- only `packyard init`, `packyard serve` and `packyard migrate` (the schema
  command a deployment runs on a fresh database) create one;
- the store a command opened is remembered in click's context, so that
  `reports_errors` can say where a "not found" was looked for.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from packyard.db.engine import create_database_engine, current_revision
from packyard.settings import Settings

STORE_KEY = "packyard.store"  # click context meta: the description of the opened store


def describe_store(settings: Settings) -> str:
    """`the store at /abs/data-dir (database URL)`, the password hidden."""
    url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    return f"the store at {settings.data_dir.resolve()} (database {url})"


def has_store(settings: Settings) -> bool:
    """Whether the settings' database holds packyard's schema. Never creates a
    SQLite file that is not there.

    Raises:
        click.ClickException: the database cannot be reached.
    """
    url = make_url(settings.resolved_database_url)
    on_file = url.get_backend_name() == "sqlite"
    if on_file and not (url.database and Path(url.database).is_file()):
        return False
    engine = create_database_engine(settings.resolved_database_url)
    try:
        return current_revision(engine) is not None
    except SQLAlchemyError as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise click.ClickException(f"{describe_store(settings)} cannot be read: {reason}") from exc
    finally:
        engine.dispose()


def open_store(settings: Settings) -> Engine:
    """The engine of the existing store of `settings`, migrated as `serve` would
    (`compose.prepare_state`); remembered for `reports_errors`.

    Raises:
        click.ClickException: there is no store there, or its database cannot be reached.
    """
    if not has_store(settings):
        raise click.ClickException(no_store_message(settings))
    remember(settings)
    from packyard.compose import prepare_state  # the whole app: imported when needed

    return prepare_state(settings)


def no_store_message(settings: Settings) -> str:
    """What to do when the settings name no store."""
    return (
        f"There is no packyard store at {describe_store(settings).removeprefix('the store at ')}. "
        "Give the --data-dir or --config of the store you mean (or PACKYARD_DATA_DIR, "
        "PACKYARD_CONFIG, PACKYARD_DATABASE_URL), or create a new store there with "
        "`packyard init`."
    )


def remember(settings: Settings) -> None:
    """Note the store this command acts on, for its error messages."""
    context = click.get_current_context(silent=True)
    if context is not None:
        context.find_root().meta[STORE_KEY] = describe_store(settings)


def remembered_store() -> str | None:
    """The description of the store this command opened, if it opened one."""
    context = click.get_current_context(silent=True)
    if context is None:
        return None
    found = context.find_root().meta.get(STORE_KEY)
    return found if isinstance(found, str) else None
