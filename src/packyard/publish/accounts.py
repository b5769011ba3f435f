"""Managing accounts: users, groups and API tokens.

Each function works in the caller's session and does not commit: the caller
commits (the CLI per command, the API per request), so a change and its audit
event land together. Every change is recorded in the audit trail as done by
`actor`.

Names of users and groups are stored lower-case and compared so: 1 to 100
ASCII letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from packaging.utils import canonicalize_name
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from packyard.auth.identity import Identity
from packyard.auth.passwords import hash_password
from packyard.auth.permissions import active_owner_exists
from packyard.auth.tokens import (
    ancestors,
    display_prefix,
    generate_token,
    hash_token,
    lineage_expiry,
    lineage_projects,
)
from packyard.db.accounts import ApiToken, Group, TokenProject, User
from packyard.db.governance import ProjectRole
from packyard.db.models import Project
from packyard.errors import Conflict, InvalidName, InvalidRequest, NotFound
from packyard.publish.audit import Origin, record

ACCOUNT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?")
# PEP 508 / name-normalization spec, case-insensitive.
PROJECT_NAME = re.compile(r"[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)
MIN_PASSWORD_LENGTH = 8
MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True, slots=True)
class UserSummary:
    name: str
    is_admin: bool
    disabled: bool
    has_password: bool
    groups: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GroupSummary:
    name: str
    members: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenSummary:
    id: int
    prefix: str
    user: str
    projects: tuple[str, ...]  # empty: every project the user may publish
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def add_user(
    session: Session,
    name: str,
    password: str | None,
    admin: bool = False,
    *,
    actor: Identity,
    origin: Origin | None = None,
) -> User:
    """Create a user; `password` None makes a user who signs in with API tokens only.

    Raises:
        InvalidRequest: the name is not valid, or the password is shorter than
            `MIN_PASSWORD_LENGTH` characters or has line breaks.
        Conflict: a user of that name exists.
    """
    name = _valid_account_name(name, "user")
    if password is not None:
        _check_password(password)
    if _find_user(session, name) is not None:
        raise Conflict(f"A user named '{name}' already exists.")
    user = User(
        name=name,
        password_hash=hash_password(password) if password is not None else None,
        is_admin=admin,
        disabled=False,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    record(
        session,
        actor=actor.actor,
        action="user-add",
        origin=origin or Origin(),
        user=name,
        admin=admin,
    )
    return user


def disable_user(
    session: Session, name: str, *, actor: Identity, origin: Origin | None = None
) -> None:
    """Disable a user: no sign-in, no token, no right (roles are kept for the record).

    Raises:
        NotFound: no such user.  Conflict: the user is disabled already.
    """
    user = _user(session, name)
    if user.disabled:
        raise Conflict(f"The user '{user.name}' is disabled already.")
    user.disabled = True
    record(
        session, actor=actor.actor, action="user-disable", origin=origin or Origin(), user=user.name
    )


def enable_user(
    session: Session, name: str, *, actor: Identity, origin: Origin | None = None
) -> None:
    """Enable a disabled user again: sign-in, tokens and roles work as before.

    Raises:
        NotFound: no such user.  Conflict: the user is not disabled.
    """
    user = _user(session, name)
    if not user.disabled:
        raise Conflict(f"The user '{user.name}' is not disabled.")
    user.disabled = False
    record(
        session, actor=actor.actor, action="user-enable", origin=origin or Origin(), user=user.name
    )


def set_password(
    session: Session, name: str, password: str, *, actor: Identity, origin: Origin | None = None
) -> None:
    """Give a user a new password (a reset by an admin). The user's browser
    sessions end (their cookies carry a fingerprint of the old hash); API
    tokens are not touched.

    Raises:
        NotFound: no such user.
        InvalidRequest: the password is shorter than `MIN_PASSWORD_LENGTH`
            characters or has line breaks.
    """
    user = _user(session, name)
    _check_password(password)
    user.password_hash = hash_password(password)
    record(
        session,
        actor=actor.actor,
        action="user-password-reset",
        origin=origin or Origin(),
        user=user.name,
    )


def list_users(session: Session) -> list[UserSummary]:
    """Every user, by name."""
    users = session.scalars(select(User).options(selectinload(User.groups)).order_by(User.name))
    return [
        UserSummary(
            name=user.name,
            is_admin=user.is_admin,
            disabled=user.disabled,
            has_password=user.password_hash is not None,
            groups=tuple(sorted(group.name for group in user.groups)),
            created_at=user.created_at,
        )
        for user in users
    ]


def groups_of(session: Session, name: str) -> list[str]:
    """The groups the user `name` is a member of, by name.

    Raises:
        NotFound: no such user.
    """
    return sorted(group.name for group in _user(session, name).groups)


def create_group(
    session: Session, name: str, *, actor: Identity, origin: Origin | None = None
) -> Group:
    """Create an empty group.

    Raises:
        InvalidRequest: the name is not valid.  Conflict: a group of that name exists.
    """
    name = _valid_account_name(name, "group")
    if _find_group(session, name) is not None:
        raise Conflict(f"A group named '{name}' already exists.")
    group = Group(name=name, created_at=datetime.now(UTC))
    session.add(group)
    record(session, actor=actor.actor, action="group-add", origin=origin or Origin(), group=name)
    return group


def delete_group(
    session: Session, name: str, *, actor: Identity, origin: Origin | None = None
) -> list[str]:
    """Delete a group: its members stay users, its roles on projects go.

    Returns the projects that had no other enabled owner (`ownership.orphaned_projects`
    lists them until an admin names one); the audit event lists them too.

    Raises:
        NotFound: no such group.
    """
    group = _group(session, name)
    members = sorted(user.name for user in group.members)
    roles = session.execute(
        select(ProjectRole.role, Project.name)
        .join(Project, Project.id == ProjectRole.project_id)
        .where(ProjectRole.group_id == group.id)
        .order_by(Project.name)
    ).all()
    session.execute(delete(ProjectRole).where(ProjectRole.group_id == group.id))
    session.delete(group)
    session.flush()
    owned = [project for role, project in roles if role == "owner"]
    orphaned = list(
        session.scalars(
            select(Project.name)
            .where(Project.name.in_(owned), ~active_owner_exists(Project.id))
            .order_by(Project.name)
        )
    )
    record(
        session,
        actor=actor.actor,
        action="group-delete",
        origin=origin or Origin(),
        group=group.name,
        members=members,
        roles={project: role for role, project in roles},
        orphaned=orphaned,
    )
    return orphaned


def add_member(
    session: Session, group: str, user: str, *, actor: Identity, origin: Origin | None = None
) -> None:
    """Add a user to a group.

    Raises:
        NotFound: no such group or user.  Conflict: the user is a member already.
    """
    found_group, found_user = _group(session, group), _user(session, user)
    if found_user in found_group.members:
        raise Conflict(f"The user '{found_user.name}' is in group '{found_group.name}' already.")
    found_group.members.append(found_user)
    record(
        session,
        actor=actor.actor,
        action="group-member-add",
        origin=origin or Origin(),
        group=found_group.name,
        user=found_user.name,
    )


def remove_member(
    session: Session, group: str, user: str, *, actor: Identity, origin: Origin | None = None
) -> None:
    """Take a user out of a group.

    Raises:
        NotFound: no such group or user, or the user is not a member.
    """
    found_group, found_user = _group(session, group), _user(session, user)
    if found_user not in found_group.members:
        raise NotFound(f"The user '{found_user.name}' is not in group '{found_group.name}'.")
    found_group.members.remove(found_user)
    record(
        session,
        actor=actor.actor,
        action="group-member-remove",
        origin=origin or Origin(),
        group=found_group.name,
        user=found_user.name,
    )


def list_groups(session: Session) -> list[GroupSummary]:
    """Every group with its members, by name."""
    groups = session.scalars(
        select(Group).options(selectinload(Group.members)).order_by(Group.name)
    )
    return [
        GroupSummary(group.name, tuple(sorted(u.name for u in group.members)), group.created_at)
        for group in groups
    ]


def create_token(
    session: Session,
    user: str,
    projects: Iterable[str] = (),
    expires_days: int | None = None,
    description: str | None = None,
    *,
    actor: Identity,
    origin: Origin | None = None,
) -> tuple[str, ApiToken]:
    """A new API token of `user`: the token itself (shown once, never stored) and its row.

    `projects` limits the token to those projects (they need not exist yet);
    none means every project the user may publish. `expires_days` None: no expiry.

    When `actor` is an API token, the new token is its child (`parent_id`): it
    reaches at most the projects the actor's token reaches (none given: the
    same), expires no later (none given: with it), and stops working when any
    token up the chain is revoked or expires (`auth.tokens.verify_token`).

    Raises:
        NotFound: no such user.
        InvalidRequest: the user is disabled, `expires_days` is out of range,
            or the new token would outlive or outreach the actor's token.
        InvalidName: a project name is not valid.
    """
    owner = _user(session, user)
    if owner.disabled:
        raise InvalidRequest(f"The user '{owner.name}' is disabled and can have no new token.")
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise InvalidRequest(f"A token expires after 1 to {MAX_TOKEN_DAYS} days.")
    scope = sorted({_valid_project_name(name) for name in projects})
    now = datetime.now(UTC)
    expires_at = now + timedelta(days=expires_days) if expires_days is not None else None
    parent = _parent_token(session, actor)
    if parent is not None:
        scope, expires_at = _within_parent(session, parent, scope, expires_at, now)
    plaintext = generate_token()
    token = ApiToken(
        user=owner,
        token_hash=hash_token(plaintext),
        prefix=display_prefix(plaintext),
        description=description,
        created_at=now,
        expires_at=expires_at,
        scopes=[TokenProject(project_name=name) for name in scope],
        parent_id=parent.id if parent is not None else None,
    )
    session.add(token)
    record(
        session,
        actor=actor.actor,
        action="token-create",
        origin=origin or Origin(),
        user=owner.name,
        token=token.prefix,
        projects=scope,
        expires_at=token.expires_at,
        parent=parent.prefix if parent is not None else None,
    )
    return plaintext, token


def _parent_token(session: Session, actor: Identity) -> ApiToken | None:
    """The API token `actor` signed in with, if it did (the new token's parent)."""
    if actor.kind != "token" or actor.token_id is None:
        return None
    parent = session.get(ApiToken, actor.token_id, options=[selectinload(ApiToken.scopes)])
    if parent is None:
        raise InvalidRequest("The token you signed in with no longer exists.")
    return parent


def _within_parent(
    session: Session,
    parent: ApiToken,
    scope: list[str],
    expires_at: datetime | None,
    now: datetime,
) -> tuple[list[str], datetime | None]:
    """The new token's projects and expiry, bounded by its parent's chain.

    Raises:
        InvalidRequest: asked for a project or a lifetime beyond the parent's.
    """
    chain = [parent, *ancestors(session, parent)]
    reach, parent_expiry = lineage_projects(chain), lineage_expiry(chain)
    if reach is not None:
        beyond = sorted(set(scope) - reach)
        if beyond:
            raise InvalidRequest(
                f"The token {parent.prefix}… you signed in with reaches only "
                f"{', '.join(sorted(reach))}: a token it creates cannot reach "
                f"{', '.join(beyond)}."
            )
        scope = scope or sorted(reach)
    if parent_expiry is not None:
        if expires_at is None:
            return scope, parent_expiry
        if expires_at > parent_expiry:
            days = (parent_expiry - now).days
            advice = (
                f"ask for at most {days} day{'s' if days > 1 else ''}, or leave the expiry out"
                if days >= 1
                else "leave the expiry out"
            )
            raise InvalidRequest(
                f"The token {parent.prefix}… you signed in with expires on "
                f"{parent_expiry.strftime('%Y-%m-%d %H:%M UTC')}: a token it creates cannot "
                f"outlive it ({advice} to expire with it)."
            )
    return scope, expires_at


def revoke_token(
    session: Session, prefix_or_id: str, *, actor: Identity, origin: Origin | None = None
) -> ApiToken:
    """Revoke a token named by its listed prefix (`pky_` and 8 more) or its number.

    Raises:
        NotFound: no such token.  Conflict: the prefix names several tokens
            (revoke by number), or the token is revoked already.
    """
    query = select(ApiToken).options(selectinload(ApiToken.user))
    if prefix_or_id.isdigit():
        query = query.where(ApiToken.id == int(prefix_or_id))
    else:
        query = query.where(ApiToken.prefix == prefix_or_id)
    matches = list(session.scalars(query))
    if not matches:
        raise NotFound(f"There is no token {prefix_or_id!r}; 'packyard token list' shows them.")
    if len(matches) > 1:
        numbers = ", ".join(str(token.id) for token in matches)
        raise Conflict(
            f"Several tokens start with {prefix_or_id!r}: revoke one by number ({numbers})."
        )
    token = matches[0]
    if token.revoked_at is not None:
        raise Conflict(f"The token {token.prefix}… is revoked already.")
    token.revoked_at = datetime.now(UTC)
    record(
        session,
        actor=actor.actor,
        action="token-revoke",
        origin=origin or Origin(),
        user=token.user.name,
        token=token.prefix,
    )
    return token


def list_tokens(session: Session, user: str | None = None) -> list[TokenSummary]:
    """Every token (of `user` if given), oldest first; never the secrets.

    Raises:
        NotFound: `user` is given and does not exist.
    """
    query = select(ApiToken).options(selectinload(ApiToken.user), selectinload(ApiToken.scopes))
    if user is not None:
        query = query.where(ApiToken.user_id == _user(session, user).id)
    return [
        TokenSummary(
            id=token.id,
            prefix=token.prefix,
            user=token.user.name,
            projects=tuple(sorted(scope.project_name for scope in token.scopes)),
            description=token.description,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )
        for token in session.scalars(query.order_by(ApiToken.id))
    ]


def _valid_account_name(name: str, kind: str) -> str:
    lowered = name.strip().lower()
    if not ACCOUNT_NAME.fullmatch(lowered):
        raise InvalidRequest(
            f"{name!r} is not a valid {kind} name: use 1 to 100 ASCII letters, digits, "
            "'.', '_' and '-', starting and ending with a letter or digit."
        )
    return lowered


def _valid_project_name(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidName(name)
    return canonicalize_name(name)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")
    if "\n" in password or "\r" in password:
        raise InvalidRequest("A password cannot contain line breaks.")


def _find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name.lower())).one_or_none()


def _find_group(session: Session, name: str) -> Group | None:
    query = select(Group).where(Group.name == name.lower()).options(selectinload(Group.members))
    return session.scalars(query).one_or_none()


def _user(session: Session, name: str) -> User:
    user = _find_user(session, name)
    if user is None:
        raise NotFound(f"There is no user named '{name}'.")
    return user


def _group(session: Session, name: str) -> Group:
    group = _find_group(session, name)
    if group is None:
        raise NotFound(f"There is no group named '{name}'.")
    return group
