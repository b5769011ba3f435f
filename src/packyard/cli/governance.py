"""`packyard yank|unyank|delete`, `packyard project delete` and
`packyard name allow|list|disallow|release`.

The operator at the server's command line acts as an administrator
(`Identity(kind="cli")`, named after the OS user in the audit trail). Every
change is committed with its audit event and a serial bump, so a running
`packyard serve` on the same state shows it on its next request.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import click
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.cli import reports_errors, settings_from, state_options
from packyard.cli.store import open_store, remembered_store
from packyard.db.engine import session_factory_for
from packyard.publish import deletions, name_guard, name_release, yanks
from packyard.settings import Settings
from packyard.storage.location import FILES, open_blob_storage

T = TypeVar("T")


def operator() -> Identity:
    """The person at the command line: a trusted administrator, named after the OS user."""
    try:
        name = getpass.getuser()
    except OSError:  # no login name in the environment nor the password database
        name = "unknown"
    return Identity(kind="cli", name=name, is_admin=True)


@contextmanager
def open_state(
    config_file: Path | None, data_dir: Path | None
) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """The settings and sessions of the (migrated) state the server also uses."""
    settings = settings_from(config_file, data_dir=data_dir)
    engine = open_store(settings)
    try:
        yield settings, session_factory_for(engine)
    finally:
        engine.dispose()


def in_transaction(
    config_file: Path | None, data_dir: Path | None, change: Callable[[Session], T]
) -> T:
    """Run `change` in one committed transaction on the state."""
    with open_state(config_file, data_dir) as (_, sessions), sessions.begin() as session:
        return change(session)


def describe(result: yanks.YankResult, verb: str) -> str:
    """One line about a yank or unyank, for the operator."""
    target = result.filename or f"{result.project} {result.version}"
    if result.override:
        return f"{verb} {target} (upstream project: recorded as an override of this site)"
    if not result.filenames:
        return f"{target}: nothing to change"
    return f"{verb} {target}: " + ", ".join(result.filenames)


@click.command()
@state_options
@click.argument("project")
@click.argument("version")
@click.argument("filename", required=False)
@click.option("--reason", help="Why it is yanked; installers show it (PEP 592).")
@reports_errors
def yank(
    config_file: Path | None,
    data_dir: Path | None,
    project: str,
    version: str,
    filename: str | None,
    reason: str | None,
) -> None:
    """Yank release VERSION of PROJECT, or only its FILENAME.

    Installers then skip it unless it is pinned with ==; it stays downloadable.
    For a project of an upstream, the yank applies to this site's view of it.
    """

    def change(session: Session) -> yanks.YankResult:
        return yanks.yank(session, operator(), project, version, filename, reason)

    click.echo(describe(in_transaction(config_file, data_dir, change), "yanked"))


@click.command()
@state_options
@click.argument("project")
@click.argument("version")
@click.argument("filename", required=False)
@reports_errors
def unyank(
    config_file: Path | None,
    data_dir: Path | None,
    project: str,
    version: str,
    filename: str | None,
) -> None:
    """Undo the yank of release VERSION of PROJECT, or of its FILENAME."""

    def change(session: Session) -> yanks.YankResult:
        return yanks.unyank(session, operator(), project, version, filename)

    click.echo(describe(in_transaction(config_file, data_dir, change), "unyanked"))


@click.command()
@state_options
@click.argument("project")
@click.argument("version")
@click.argument("filename", required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def delete(
    config_file: Path | None,
    data_dir: Path | None,
    project: str,
    version: str,
    filename: str | None,
    yes: bool,
) -> None:
    """Delete release VERSION of an in-house PROJECT, or only its FILENAME, for good.

    The filenames can never be used again. Prefer `packyard yank`: it keeps
    `==` pins working.
    """
    target = filename or f"{project} {version}"
    if not yes:
        click.confirm(f"Delete {target} for good? Its filenames can never be reused", abort=True)
    with open_state(config_file, data_dir) as (settings, sessions):
        store = open_blob_storage(settings).store(FILES)
        deletion = anyio.run(
            deletions.delete, sessions, store, operator(), project, version, filename
        )
    click.echo(f"deleted {', '.join(deletion.filenames)}")


@click.group()
def project() -> None:
    """Delete an in-house project."""


@project.command(name="delete")
@state_options
@click.argument("project_name", metavar="PROJECT")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def delete_project(
    config_file: Path | None, data_dir: Path | None, project_name: str, yes: bool
) -> None:
    """Delete the in-house PROJECT for good: every file (their filenames can never be
    used again), its owners and maintainers, and the project itself.

    The name is then no longer in-house: an upstream project of that name is
    served again, and a new upload of it passes the name guard as a new project.
    """
    if not yes:
        click.confirm(
            f"Delete the project {project_name} and all its files for good? "
            "Their filenames can never be reused",
            abort=True,
        )
    with open_state(config_file, data_dir) as (settings, sessions):
        store = open_blob_storage(settings).store(FILES)
        deletion = anyio.run(
            deletions.delete_project_for_good, sessions, store, operator(), project_name
        )
    files = ", ".join(deletion.filenames) or "no files"
    click.echo(f"deleted the project {deletion.project} ({files})")


@click.group()
def name() -> None:
    """Public names an administrator allows in-house, and names given back to the upstream."""


@name.command(name="allow")
@state_options
@click.argument("project_name", metavar="NAME")
@click.option("--reason", help="Why this public name may be used in-house.")
@reports_errors
def allow(
    config_file: Path | None, data_dir: Path | None, project_name: str, reason: str | None
) -> None:
    """Let a new in-house project take NAME although a public project uses or resembles it.

    The in-house project will then hide the public one from every user of this
    index, even when it has no file left (until `packyard name release NAME`).
    """

    def change(session: Session) -> str:
        return name_guard.allow_name(session, operator(), project_name, reason).name

    click.echo(f"allowed {in_transaction(config_file, data_dir, change)}")


@name.command(name="disallow")
@state_options
@click.argument("project_name", metavar="NAME")
@reports_errors
def disallow(config_file: Path | None, data_dir: Path | None, project_name: str) -> None:
    """Remove NAME from the allow-list (a project already created keeps it while it
    has files; `packyard name release` gives the name back to the upstream)."""

    def change(session: Session) -> None:
        name_guard.disallow_name(session, operator(), project_name)

    in_transaction(config_file, data_dir, change)
    click.echo(f"disallowed {project_name}")


@name.command(name="release")
@state_options
@click.argument("project_name", metavar="NAME")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def release(config_file: Path | None, data_dir: Path | None, project_name: str, yes: bool) -> None:
    """Give NAME back to the upstream: the in-house project stops hiding the public one.

    Deletes the in-house project of that name, if any, with all its files
    (their filenames can never be used again), and takes the name off the
    allow-list, so that a new upload of it passes the name guard again.
    """
    if not yes:
        click.confirm(
            f"Release {project_name} to the upstream, deleting its in-house project and "
            "files for good?",
            abort=True,
        )
    with open_state(config_file, data_dir) as (settings, sessions):
        store = open_blob_storage(settings).store(FILES)
        done = anyio.run(
            name_release.release_name_for_good, sessions, store, operator(), project_name
        )
    click.echo(done.summary)


@name.command(name="list")
@state_options
@reports_errors
def list_names(config_file: Path | None, data_dir: Path | None) -> None:
    """Print the allowed names: name, who allowed it, when, and why."""
    with open_state(config_file, data_dir) as (_, sessions), sessions() as session:
        rows = name_guard.allowed_names(session)
        if not rows:
            click.echo(f"No allowed names in {remembered_store()}.", err=True)
        for row in rows:
            when = row.created_at.strftime("%Y-%m-%d")
            click.echo("\t".join([row.name, row.allowed_by, when, row.reason or ""]))
