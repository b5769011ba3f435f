"""Accounts the organisation's directory keeps: made at a person's first sign-in
with a provider (`[[auth.sso]]`), refreshed at each sign-in and by the
scheduled directory refresh (`auth/directory/refresh.py`).

- A person is bound to their account by the provider's `sub`, not by name:
  a name that belongs to a local account, or to someone else of the
  directory, is refused (unless `adopt_local_users` lets the provider take a
  local account over), so that nobody is ever signed in as someone else.
- Directory groups become packyard groups by `[auth.directory_groups]`: the
  memberships the directory made (`source = "directory"`) follow it, added and
  removed; memberships an admin added by hand are left alone. A group that
  does not exist yet is made (`source = "directory"`).
- When the groups are not known (the directory is down), nothing is taken
  away: the groups kept from before stay, marked stale.

Each function works in the caller's session and does not commit; every change
is audited, with the provider (or the refresh) as the actor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.sso.person import Person
from packyard.db.accounts import Group, GroupMember, User
from packyard.errors import AuthenticationFailed, InvalidRequest, NotFound
from packyard.publish.accounts import ACCOUNT_NAME
from packyard.publish.audit import Origin, record
from packyard.settings import DirectoryGroupSettings

DIRECTORY = "directory"


@dataclass(frozen=True, slots=True)
class DirectoryFacts:
    """What the directory says of a person now; None fields: not known, kept as stored.

    `unreachable`: the directory could not be asked, so the groups kept are stale
    (groups None without it: nothing here keeps groups, e.g. no groups claim).
    """

    email: str | None
    full_name: str | None
    manager: str | None
    groups: frozenset[str] | None
    unreachable: bool = False


@dataclass(frozen=True, slots=True)
class DirectoryStatus:
    """How a directory account's groups stand, for its account page."""

    provider: str
    checked_at: datetime | None
    stale: bool


def directory_status(session: Session, name: str) -> DirectoryStatus | None:
    """None for a local account."""
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is None or user.directory is None:
        return None
    return DirectoryStatus(user.directory, user.directory_checked_at, user.groups_stale)


def claimed_groups(user: User) -> frozenset[str]:
    """The directory groups the ID token named at the user's last sign-in."""
    try:
        names = json.loads(user.claimed_groups or "[]")
    except ValueError:
        return frozenset()
    return (
        frozenset(n for n in names if isinstance(n, str))
        if isinstance(names, list)
        else frozenset()
    )


def packyard_groups(names: Iterable[str], settings: DirectoryGroupSettings) -> frozenset[str]:
    """The packyard groups that directory groups `names` map to: by `map`, else
    by a glob of `include`, compared case-insensitively (under their own name,
    lower-cased, if valid)."""
    mapped: set[str] = set()
    for name in names:
        target = settings.map.get(name)
        # Case-insensitive, as directories compare group names.
        if target is None and any(fnmatchcase(name.lower(), g.lower()) for g in settings.include):
            target = name
        if target is not None and ACCOUNT_NAME.fullmatch(target.strip().lower()):
            mapped.add(target.strip().lower())
    return frozenset(mapped)


def sign_in(
    session: Session,
    person: Person,
    settings: DirectoryGroupSettings,
    *,
    adopt_local_users: bool,
    origin: Origin,
) -> Identity:
    """The account of a person a provider has just signed in: made on their first
    sign-in, brought up to date with what the directory says now.

    Raises:
        AuthenticationFailed: the name belongs to another account (a local one
            that may not be adopted, or another person's), or the account is disabled.
    """
    actor = f"sso:{person.provider}"
    user = _account(session, person, adopt_local_users, actor, origin)
    if user.disabled:
        raise AuthenticationFailed(
            f"Your account '{user.name}' is disabled here: ask an admin to enable it."
        )
    facts = DirectoryFacts(
        person.email, person.full_name, person.manager, person.groups, person.directory_down
    )
    update(session, user, facts, settings, actor=actor, origin=origin)
    user.last_sign_in_at = datetime.now(UTC)
    if person.claimed_groups is not None:
        user.claimed_groups = json.dumps(sorted(person.claimed_groups))
    session.flush()
    session.refresh(user, ["groups"])
    return Identity(
        kind="user",
        name=user.name,
        user_id=user.id,
        is_admin=user.is_admin,
        groups=frozenset(group.name for group in user.groups),
    )


def update(
    session: Session,
    user: User,
    facts: DirectoryFacts,
    settings: DirectoryGroupSettings,
    *,
    actor: str,
    origin: Origin,
) -> None:
    """Bring a directory account in line with `facts`: e-mail, name, manager,
    memberships and (with `settings.admins`) admin rights."""
    now = datetime.now(UTC)
    user.email = facts.email or user.email
    user.full_name = facts.full_name or user.full_name
    user.manager = facts.manager or user.manager
    if facts.groups is None:
        user.groups_stale = facts.unreachable
        return
    user.groups_stale = False
    user.directory_checked_at = now
    _follow_groups(session, user, packyard_groups(facts.groups, settings), actor, origin)
    if settings.admins is not None and user.is_admin != (settings.admins in facts.groups):
        user.is_admin = settings.admins in facts.groups
        record(
            session,
            actor=actor,
            action="user-admin-grant" if user.is_admin else "user-admin-revoke",
            origin=origin,
            user=user.name,
            via=DIRECTORY,
        )


def unbind(
    session: Session, name: str, provider: str | None, *, actor: Identity, origin: Origin
) -> str:
    """Forget the `sub` a directory account is bound to (and move it to `provider`):
    the next sign-in with that provider under this name binds it again. Returns
    the provider.

    Raises:
        NotFound: no such user.  InvalidRequest: a local account.
    """
    user = session.scalars(select(User).where(User.name == name.lower())).one_or_none()
    if user is None:
        raise NotFound(f"There is no user named '{name}'.")
    if user.directory is None:
        raise InvalidRequest(f"'{user.name}' is a local account: it is bound to no provider.")
    before = user.directory
    user.directory, user.subject = provider or user.directory, None
    record(
        session,
        actor=actor.actor,
        action="user-unbind",
        origin=origin,
        user=user.name,
        provider=before,
        to_provider=user.directory,
    )
    return user.directory


def _account(
    session: Session, person: Person, adopt_local_users: bool, actor: str, origin: Origin
) -> User:
    bound = session.scalars(
        select(User).where(User.directory == person.provider, User.subject == person.subject)
    ).one_or_none()
    if bound is not None:
        return bound
    named = session.scalars(select(User).where(User.name == person.username)).one_or_none()
    if named is not None and named.directory == person.provider and named.subject is None:
        named.subject = person.subject  # unbound by an admin (`unbind`): bound again
        record(session, actor=actor, action="user-bind", origin=origin, user=named.name)
        return named
    if named is None:
        user = User(
            name=person.username,
            password_hash=None,
            is_admin=False,
            disabled=False,
            created_at=datetime.now(UTC),
            directory=person.provider,
            subject=person.subject,
        )
        session.add(user)
        session.flush()
        record(
            session, actor=actor, action="user-add", origin=origin, user=user.name, via=DIRECTORY
        )
        return user
    if named.directory is not None:
        raise AuthenticationFailed(
            f"The user name '{person.username}' belongs to another person of "
            f"{named.directory} here. Ask an admin to sort the accounts out."
        )
    if not adopt_local_users:
        raise AuthenticationFailed(
            f"A local account named '{person.username}' exists here, and signing in with "
            f"{person.provider} does not take local accounts over. Ask an admin: they can "
            "allow it (adopt_local_users in [[auth.sso]]) or rename that account."
        )
    named.directory, named.subject = person.provider, person.subject
    record(session, actor=actor, action="user-adopt", origin=origin, user=named.name)
    return named


def _follow_groups(
    session: Session, user: User, wanted: frozenset[str], actor: str, origin: Origin
) -> None:
    rows = session.execute(
        select(GroupMember, Group)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id == user.id)
    ).all()
    current = {group.name for _, group in rows}
    for member, group in rows:
        if member.source == DIRECTORY and group.name not in wanted:
            session.delete(member)
            _audit_membership(session, "group-member-remove", group, user, actor, origin)
    for name in sorted(wanted - current):
        group = _group(session, name, actor, origin)
        session.add(GroupMember(group_id=group.id, user_id=user.id, source=DIRECTORY))
        _audit_membership(session, "group-member-add", group, user, actor, origin)
    session.flush()


def _group(session: Session, name: str, actor: str, origin: Origin) -> Group:
    group = session.scalars(select(Group).where(Group.name == name)).one_or_none()
    if group is None:
        group = Group(name=name, created_at=datetime.now(UTC), source=DIRECTORY)
        session.add(group)
        session.flush()
        record(session, actor=actor, action="group-add", origin=origin, group=name, via=DIRECTORY)
    return group


def _audit_membership(
    session: Session, action: str, group: Group, user: User, actor: str, origin: Origin
) -> None:
    record(
        session,
        actor=actor,
        action=action,
        origin=origin,
        group=group.name,
        user=user.name,
        via=DIRECTORY,
    )
