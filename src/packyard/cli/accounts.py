"""`packyard user|group|token|owner`: accounts, API tokens and project roles.

The operator at the server's command line is trusted: every command acts as an
admin `cli` identity named after the operating-system user, which is how the
audit trail records it.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.cli import reports_errors, settings_from, state_options
from packyard.cli.store import open_store, remembered_store
from packyard.db.accounts import User
from packyard.db.engine import session_factory_for
from packyard.db.governance import ROLES
from packyard.db.models import File, Project
from packyard.publish import accounts, directory_accounts, ownership, succession
from packyard.publish.audit import COMMAND_LINE
from packyard.settings import Settings


def operator() -> Identity:
    """The identity of whoever runs the command."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        # No login name and no passwd entry (a bare container user).
        name = "operator"
    return Identity(kind="cli", name=name, is_admin=True)


@contextmanager
def state_session(config_file: Path | None, data_dir: Path | None) -> Iterator[Session]:
    """A session on the migrated database of these settings, committed if the block succeeds."""
    with settings_session(settings_from(config_file, data_dir=data_dir)) as session:
        yield session


@contextmanager
def settings_session(settings: Settings) -> Iterator[Session]:
    """A session on the migrated database of `settings`, committed if the block succeeds."""
    engine = open_store(settings)
    try:
        with session_factory_for(engine)() as session:
            yield session
            session.commit()
    finally:
        engine.dispose()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


# -- users -------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Add, disable, enable, retire and list users; reset passwords."""


@user.command("add")
@state_options
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input. "
    "Without it the user signs in with API tokens only.",
)
@click.option("--admin", is_flag=True, help="Make the user an admin (all projects, all roles).")
@reports_errors
def user_add(
    config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool, admin: bool
) -> None:
    """Add the user NAME."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input has no password")
    with state_session(config_file, data_dir) as session:
        created = accounts.add_user(
            session, name, password, admin, actor=operator(), origin=COMMAND_LINE
        )
        created_name = created.name
    click.echo(f"Added {'admin ' if admin else ''}user '{created_name}'.")


@user.command("disable")
@state_options
@click.argument("name")
@reports_errors
def user_disable(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Disable the user NAME: no more sign-in, tokens or rights. The projects
    only they owned go to their manager, else `[auth.succession] fallback_group`."""
    settings = settings_from(config_file, data_dir=data_dir)
    with settings_session(settings) as session:
        results = succession.disable(
            session,
            name,
            fallback_group=settings.auth.succession.fallback_group,
            actor=operator(),
            origin=COMMAND_LINE,
        )
    click.echo(f"Disabled user '{name.lower()}'.")
    _report_handovers(results)


@user.command("retire")
@state_options
@click.argument("name")
@click.option(
    "--to",
    "successor",
    metavar="SUCCESSOR",
    help="Who takes over: USER or group:GROUP. Default: their manager, else "
    "[auth.succession] fallback_group.",
)
@reports_errors
def user_retire(
    config_file: Path | None, data_dir: Path | None, name: str, successor: str | None
) -> None:
    """Disable the user NAME (if not already) and hand the projects only they
    owned to SUCCESSOR, who becomes an owner of each."""
    settings = settings_from(config_file, data_dir=data_dir)
    with settings_session(settings) as session:
        results = succession.retire(
            session,
            name,
            to=successor,
            fallback_group=settings.auth.succession.fallback_group,
            actor=operator(),
            origin=COMMAND_LINE,
        )
    click.echo(f"Retired user '{name.lower()}'.")
    _report_handovers(results)


def _report_handovers(results: Sequence[succession.HandoverResult]) -> None:
    """One line per project the user left without another owner."""
    if not results:
        click.echo("No project was left without an owner.")
    for result in results:
        if result.successor is not None:
            click.echo(f"{result.project}: handed over to {result.successor}")
        else:
            click.echo(
                f"{result.project}: no owner now ({result.why}); name one with "
                f"`packyard owner add {result.project} --user NAME`"
            )


@user.command("enable")
@state_options
@click.argument("name")
@reports_errors
def user_enable(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Enable the disabled user NAME again: sign-in, tokens and roles work as before."""
    with state_session(config_file, data_dir) as session:
        accounts.enable_user(session, name, actor=operator(), origin=COMMAND_LINE)
    click.echo(f"Enabled user '{name.lower()}'.")


@user.command("password")
@state_options
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from the first line of standard input (else: asked twice).",
)
@reports_errors
def user_password(
    config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool
) -> None:
    """Reset the password of the user NAME. Their browser sessions end; their
    API tokens keep working (revoke them with `packyard token revoke`)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input has no password")
    else:
        password = click.prompt(
            f"New password for '{name.lower()}'", hide_input=True, confirmation_prompt=True
        )
    with state_session(config_file, data_dir) as session:
        accounts.set_password(session, name, password, actor=operator(), origin=COMMAND_LINE)
    click.echo(f"Set a new password for user '{name.lower()}'.")


@user.command("unbind")
@state_options
@click.argument("name")
@click.option(
    "--provider",
    metavar="NAME",
    help="Bind to this [[auth.sso]] provider instead (after renaming the provider's entry).",
)
@reports_errors
def user_unbind(
    config_file: Path | None, data_dir: Path | None, name: str, provider: str | None
) -> None:
    """Forget which person of the provider the account NAME belongs to: the next
    sign-in under this name binds it again (after the provider's client, or how it
    makes `sub`, changed)."""
    with state_session(config_file, data_dir) as session:
        bound = directory_accounts.unbind(
            session, name, provider, actor=operator(), origin=COMMAND_LINE
        )
    click.echo(f"The user '{name.lower()}' is bound again at their next sign-in with {bound}.")


@user.command("list")
@state_options
@reports_errors
def user_list(config_file: Path | None, data_dir: Path | None) -> None:
    """List the users."""
    with state_session(config_file, data_dir) as session:
        users = accounts.list_users(session)
    if not users:
        click.echo(f"No users in {remembered_store()}.")
        return
    _table(
        ("NAME", "ADMIN", "STATUS", "PASSWORD", "GROUPS"),
        [
            (
                u.name,
                "yes" if u.is_admin else "no",
                "disabled" if u.disabled else "active",
                "yes" if u.has_password else "no",
                ",".join(u.groups) or "-",
            )
            for u in users
        ],
    )


# -- groups ------------------------------------------------------------------------


@click.group()
def group() -> None:
    """Create and delete groups, and manage their members."""


@group.command("create")
@state_options
@click.argument("name")
@reports_errors
def group_create(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Create the group NAME."""
    with state_session(config_file, data_dir) as session:
        created = accounts.create_group(session, name, actor=operator(), origin=COMMAND_LINE)
        created_name = created.name
    click.echo(f"Created group '{created_name}'.")


@group.command("add")
@state_options
@click.argument("group_name", metavar="GROUP")
@click.argument("user_name", metavar="USER")
@reports_errors
def group_add(
    config_file: Path | None, data_dir: Path | None, group_name: str, user_name: str
) -> None:
    """Add USER to GROUP."""
    with state_session(config_file, data_dir) as session:
        accounts.add_member(session, group_name, user_name, actor=operator(), origin=COMMAND_LINE)
    click.echo(f"Added '{user_name.lower()}' to group '{group_name.lower()}'.")


@group.command("remove")
@state_options
@click.argument("group_name", metavar="GROUP")
@click.argument("user_name", metavar="USER")
@reports_errors
def group_remove(
    config_file: Path | None, data_dir: Path | None, group_name: str, user_name: str
) -> None:
    """Take USER out of GROUP."""
    with state_session(config_file, data_dir) as session:
        accounts.remove_member(
            session, group_name, user_name, actor=operator(), origin=COMMAND_LINE
        )
    click.echo(f"Removed '{user_name.lower()}' from group '{group_name.lower()}'.")


@group.command("delete")
@state_options
@click.argument("name")
@reports_errors
def group_delete(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete the group NAME: its members stay users, its roles on projects go."""
    with state_session(config_file, data_dir) as session:
        orphaned = accounts.delete_group(session, name, actor=operator(), origin=COMMAND_LINE)
    click.echo(f"Deleted group '{name.lower()}'.")
    if orphaned:
        click.echo(
            "These projects have no owner now (`packyard owner add PROJECT --user NAME`): "
            + ", ".join(orphaned)
        )


@group.command("list")
@state_options
@reports_errors
def group_list(config_file: Path | None, data_dir: Path | None) -> None:
    """List the groups and their members."""
    with state_session(config_file, data_dir) as session:
        groups = accounts.list_groups(session)
    if not groups:
        click.echo(f"No groups in {remembered_store()}.")
        return
    _table(("GROUP", "MEMBERS"), [(g.name, ",".join(g.members) or "-") for g in groups])


# -- tokens ------------------------------------------------------------------------


@click.group()
def token() -> None:
    """Create, revoke and list API tokens."""


@token.command("create")
@state_options
@click.argument("user_name", metavar="USER")
@click.option(
    "--project", "projects", multiple=True, help="Limit the token to this project (repeatable)."
)
@click.option(
    "--expires", "expires_days", type=int, help="Expire the token after DAYS days.", metavar="DAYS"
)
@click.option("--description", help="What the token is for (shown in listings).")
@reports_errors
def token_create(
    config_file: Path | None,
    data_dir: Path | None,
    user_name: str,
    projects: tuple[str, ...],
    expires_days: int | None,
    description: str | None,
) -> None:
    """Create an API token of USER and print it, alone, on the last line.

    The token is shown only this once: it is stored as a hash.
    """
    with state_session(config_file, data_dir) as session:
        plaintext, created = accounts.create_token(
            session,
            user_name,
            projects,
            expires_days,
            description,
            actor=operator(),
            origin=COMMAND_LINE,
        )
        session.flush()
        number, prefix, expires_at = created.id, created.prefix, created.expires_at
        scopes = sorted(scope.project_name for scope in created.scopes)
    scope = ", ".join(scopes) if scopes else "every project the user may publish"
    click.echo(f"Created API token #{number} ({prefix}…) of '{user_name.lower()}' for: {scope}.")
    click.echo(f"Expires: {_when(expires_at) if expires_at else 'never'}. It is shown only once:")
    click.echo(plaintext)


@token.command("revoke")
@state_options
@click.argument("prefix")
@reports_errors
def token_revoke(config_file: Path | None, data_dir: Path | None, prefix: str) -> None:
    """Revoke the token that PREFIX (as listed, e.g. pky_ab12cd34) or its number names."""
    with state_session(config_file, data_dir) as session:
        revoked = accounts.revoke_token(session, prefix, actor=operator(), origin=COMMAND_LINE)
        label = f"#{revoked.id} ({revoked.prefix}…) of '{revoked.user.name}'"
    click.echo(f"Revoked token {label}.")


@token.command("list")
@state_options
@click.argument("user_name", metavar="[USER]", required=False)
@reports_errors
def token_list(config_file: Path | None, data_dir: Path | None, user_name: str | None) -> None:
    """List the API tokens (of USER), never the secrets."""
    with state_session(config_file, data_dir) as session:
        tokens = accounts.list_tokens(session, user_name)
    if not tokens:
        click.echo(
            f"No API tokens{f' of {user_name.lower()!r}' if user_name else ''} in "
            f"{remembered_store()}."
        )
        return
    _table(
        ("#", "PREFIX", "USER", "PROJECTS", "EXPIRES", "REVOKED", "LAST USED", "DESCRIPTION"),
        [
            (
                str(t.id),
                t.prefix,
                t.user,
                ",".join(t.projects) or "*",
                _when(t.expires_at),
                _when(t.revoked_at),
                _when(t.last_used_at),
                t.description or "",
            )
            for t in tokens
        ],
    )


# -- owners ------------------------------------------------------------------------


@click.group()
def owner() -> None:
    """Manage the owners and maintainers of in-house projects."""


@owner.command("add")
@state_options
@click.argument("project")
@click.option("--user", "user_name", help="The user to give the role to.")
@click.option("--group", "group_name", help="The group to give the role to.")
@click.option("--role", type=click.Choice(ROLES), default="owner", show_default=True)
@reports_errors
def owner_add(
    config_file: Path | None,
    data_dir: Path | None,
    project: str,
    user_name: str | None,
    group_name: str | None,
    role: str,
) -> None:
    """Make a user or a group owner (or maintainer) of PROJECT."""
    with state_session(config_file, data_dir) as session:
        ownership.add_role(
            session,
            operator(),
            project,
            role,
            user=user_name,
            group=group_name,
            origin=COMMAND_LINE,
        )
    click.echo(f"'{user_name or group_name}' is now {role} of '{project}'.")


@owner.command("remove")
@state_options
@click.argument("project")
@click.option("--user", "user_name", help="The user whose role to remove.")
@click.option("--group", "group_name", help="The group whose role to remove.")
@reports_errors
def owner_remove(
    config_file: Path | None,
    data_dir: Path | None,
    project: str,
    user_name: str | None,
    group_name: str | None,
) -> None:
    """Take away the role of a user or a group on PROJECT."""
    with state_session(config_file, data_dir) as session:
        ownership.remove_role(
            session, operator(), project, user=user_name, group=group_name, origin=COMMAND_LINE
        )
    click.echo(f"'{user_name or group_name}' has no role on '{project}' any more.")


@owner.command("list")
@state_options
@click.argument("project")
@reports_errors
def owner_list(config_file: Path | None, data_dir: Path | None, project: str) -> None:
    """List the owners and maintainers of PROJECT."""
    with state_session(config_file, data_dir) as session:
        roles = ownership.list_roles(session, project)
    _table(
        ("ROLE", "KIND", "NAME", "SINCE"),
        [
            (r.role, r.kind, r.name + (" (disabled)" if r.disabled else ""), _when(r.created_at))
            for r in roles
        ],
    )


@owner.command("orphaned")
@state_options
@reports_errors
def owner_orphaned(config_file: Path | None, data_dir: Path | None) -> None:
    """List the projects that have no enabled owner."""
    with state_session(config_file, data_dir) as session:
        names = ownership.orphaned_projects(session)
    if not names:
        click.echo(f"Every project has an enabled owner in {remembered_store()}.", err=True)
    for name in names:
        click.echo(name)


# -- whoami ------------------------------------------------------------------------


@click.command("whoami")
@state_options
@reports_errors
def whoami(config_file: Path | None, data_dir: Path | None) -> None:
    """Say who this command line acts as, and on which store."""
    identity = operator()
    with state_session(config_file, data_dir) as session:
        counts = _store_counts(session)
    click.echo(
        f"You are '{identity.name}' at the command line: every command acts as an "
        f"administrator, recorded in the audit log as '{identity.actor}'."
    )
    click.echo(f"Store: {remembered_store()}: {counts}.")


def _store_counts(session: Session) -> str:
    """`3 users, 12 projects, 40 files`: enough to tell one store from another."""
    found = [
        (session.scalar(select(func.count()).select_from(table)) or 0, noun)
        for table, noun in ((User, "user"), (Project, "project"), (File, "file"))
    ]
    return ", ".join(f"{count} {noun}{'s' * (count != 1)}" for count, noun in found)
