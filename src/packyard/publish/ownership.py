"""Who owns and maintains each in-house project, and who may upload to it.

    if not check_upload(session, identity, name):   # False: a new project
        project = Project(...); session.add(project)
        claim(session, identity, project)            # same transaction

Owners may upload and manage roles; maintainers may upload. A user holds a
role directly or through a group. The first uploader of a new name becomes
its owner. Every change is written to the audit trail in the caller's
transaction; the caller commits.

A CI identity has no user to make owner: its rights come from the
configuration (`[auth.oidc]`), which stays the one place that grants them. Its
first upload records the CI subject in the audit trail and leaves the project
without an owner, so that it is listed by `orphaned_projects` until an admin
names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.permissions import (
    active_owner_exists,
    active_user,
    require_manage,
    require_upload,
    upload_denied,
)
from packyard.db.accounts import Group, User
from packyard.db.governance import ROLES, ProjectRole
from packyard.db.models import Project
from packyard.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, ProjectNotFound
from packyard.publish.audit import Origin, record


@dataclass(frozen=True, slots=True)
class RoleEntry:
    """One role on a project, as listed: `kind` is `user` or `group`."""

    role: str
    kind: str
    name: str
    disabled: bool
    created_at: datetime


def check_upload(session: Session, identity: Identity, project_name: str) -> bool:
    """Whether the project exists, once it is known that `identity` may upload to it.

    Returns True for an existing project the identity may upload to, False
    when no project has this (normalised) name yet: the caller creates it and
    calls `claim`.

    Raises:
        PermissionDenied: "The user '{u}' isn't allowed to upload to project
            '{p}'." or, for a token or CI credential limited to other projects,
            "The given token isn't allowed to upload to project '{p}'."; also a
            disabled user, and an archived or quarantined project.
    """
    name = canonicalize_name(project_name)
    if not identity.may_touch(name):
        raise upload_denied(identity, name)
    active_user(session, identity)
    project = _find_project(session, name)
    if project is None:
        return False
    require_upload(session, identity, project)
    return True


def claim(
    session: Session, identity: Identity, project: Project, *, origin: Origin | None = None
) -> None:
    """Make the first uploader of the new `project` its owner (see the module doc for CI).

    Called in the transaction that adds `project`; flushes it to get its id.
    """
    session.flush()
    if identity.user_id is not None:
        session.add(
            ProjectRole(
                project_id=project.id,
                role="owner",
                user_id=identity.user_id,
                created_at=datetime.now(UTC),
            )
        )
        owner: str | None = identity.name
    else:
        owner = None
    record(
        session,
        actor=identity.actor,
        action="project-claim",
        origin=origin or Origin(),
        project=project.name,
        owner=owner,
        subject=identity.name,
    )


def find_owner(session: Session, spec: str) -> User | Group:
    """The user or group `spec` names: `user:NAME`, `group:NAME`, or a bare NAME
    (a user, else a group), to be made owner of new projects (`packyard import --owner`).

    Raises:
        NotFound: no such user or group.
        InvalidRequest: a bare NAME is both a user's and a group's, or names a
            disabled user.
    """
    kind, _, name = spec.partition(":") if ":" in spec else ("", "", spec)
    if kind not in ("", "user", "group"):
        raise InvalidRequest(f"Name the owner as USER, user:USER or group:GROUP, not {spec!r}.")
    user = _find_user(session, name) if kind in ("", "user") else None
    group = _find_group(session, name) if kind in ("", "group") else None
    if user is not None and group is not None:
        raise InvalidRequest(
            f"'{name}' is both a user and a group: write user:{name} or group:{name}."
        )
    found = user or group
    if found is None:
        wanted = {"user": "user", "group": "group"}.get(kind, "user or group")
        raise NotFound(f"There is no {wanted} named '{name}'.")
    if isinstance(found, User) and found.disabled:
        raise InvalidRequest(f"The user '{found.name}' is disabled and can hold no role.")
    return found


def give_new_project(
    session: Session,
    actor: Identity,
    project: Project,
    owner: User | Group | None,
    *,
    origin: Origin | None = None,
) -> None:
    """Make `owner` the owner of the new `project` that `actor` (an admin, the
    importer) created; None leaves it without one, listed by `orphaned_projects`.

    Called in the transaction that adds `project`; flushes it to get its id.
    """
    session.flush()
    if owner is not None:
        row = ProjectRole(project_id=project.id, role="owner", created_at=datetime.now(UTC))
        row.user_id, row.group_id = _member_ids(owner)
        session.add(row)
    record(
        session,
        actor=actor.actor,
        action="project-claim",
        origin=origin or Origin(),
        project=project.name,
        owner=_label(owner) if owner is not None else None,
        subject=actor.name,
    )


def add_role(
    session: Session,
    actor: Identity,
    project_name: str,
    role: str,
    *,
    user: str | None = None,
    group: str | None = None,
    origin: Origin | None = None,
) -> ProjectRole:
    """Give `user` or `group` the `role` (`owner` or `maintainer`) on a project.

    A member that holds the other role is moved to this one (an owner made
    maintainer must not be the last owner).

    Raises:
        InvalidRequest: an unknown role, not exactly one of user and group, or
            a disabled user.
        ProjectNotFound: no such project.  NotFound: no such user or group.
        PermissionDenied: `actor` is neither an owner of the project nor an admin,
            or the change would leave the project without an owner.
        Conflict: the member already holds that role.
    """
    if role not in ROLES:
        raise InvalidRequest(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    project = _project(session, project_name)
    admin = require_manage(session, actor, project)
    member = _member(session, user, group)
    if isinstance(member, User) and member.disabled:
        raise InvalidRequest(f"The user '{member.name}' is disabled and can hold no role.")
    existing = _role_row(session, project, member)
    if existing is not None and existing.role == role:
        raise Conflict(f"{_label(member)} is already {role} of project '{project.name}'.")
    if existing is not None:
        _keep_an_owner(session, project, existing, admin)
        existing.role = role
        row = existing
    else:
        row = ProjectRole(project_id=project.id, role=role, created_at=datetime.now(UTC))
        row.user_id, row.group_id = _member_ids(member)
        session.add(row)
    record(
        session,
        actor=actor.actor,
        action="role-add",
        origin=origin or Origin(),
        project=project.name,
        member=_label(member),
        role=role,
    )
    return row


def remove_role(
    session: Session,
    actor: Identity,
    project_name: str,
    *,
    user: str | None = None,
    group: str | None = None,
    origin: Origin | None = None,
) -> None:
    """Take away whatever role `user` or `group` holds on a project.

    Raises:
        InvalidRequest: not exactly one of user and group.
        ProjectNotFound: no such project.  NotFound: no such user or group, or
            it holds no role on the project.
        PermissionDenied: `actor` is neither an owner nor an admin, or the
            member is the last owner and `actor` is not an admin.
    """
    project = _project(session, project_name)
    admin = require_manage(session, actor, project)
    member = _member(session, user, group)
    existing = _role_row(session, project, member)
    if existing is None:
        raise NotFound(f"{_label(member)} has no role on project '{project.name}'.")
    _keep_an_owner(session, project, existing, admin)
    session.delete(existing)
    record(
        session,
        actor=actor.actor,
        action="role-remove",
        origin=origin or Origin(),
        project=project.name,
        member=_label(member),
        role=existing.role,
    )


def list_roles(session: Session, project_name: str) -> list[RoleEntry]:
    """The project's roles, owners first, then by name.

    Raises:
        ProjectNotFound: no such project.
    """
    project = _project(session, project_name)
    of_project = ProjectRole.project_id == project.id
    users = session.execute(
        select(ProjectRole, User).join(User, User.id == ProjectRole.user_id).where(of_project)
    )
    groups = session.execute(
        select(ProjectRole, Group).join(Group, Group.id == ProjectRole.group_id).where(of_project)
    )
    entries = [RoleEntry(row.role, "user", u.name, u.disabled, row.created_at) for row, u in users]
    entries += [RoleEntry(row.role, "group", g.name, False, row.created_at) for row, g in groups]
    return sorted(entries, key=lambda e: (ROLES.index(e.role), e.kind, e.name))


@dataclass(frozen=True, slots=True)
class MyProject:
    """A project a user has a role on, directly (`group` None) or through a group."""

    name: str
    role: str
    group: str | None


def projects_of(session: Session, user_name: str) -> list[MyProject]:
    """The projects `user_name` owns or maintains, directly or through their groups,
    by name, owner roles first for each project.

    Raises:
        NotFound: no such user.
    """
    user = _find_user(session, user_name)
    if user is None:
        raise NotFound(f"There is no user named '{user_name}'.")
    direct = session.execute(
        select(Project.name, ProjectRole.role)
        .join(ProjectRole, ProjectRole.project_id == Project.id)
        .where(ProjectRole.user_id == user.id)
    )
    through_groups = session.execute(
        select(Project.name, ProjectRole.role, Group.name)
        .join(ProjectRole, ProjectRole.project_id == Project.id)
        .join(Group, Group.id == ProjectRole.group_id)
        .where(Group.id.in_([group.id for group in user.groups]))
    )
    found = [MyProject(name, role, None) for name, role in direct]
    found += [MyProject(name, role, group) for name, role, group in through_groups]
    return sorted(found, key=lambda p: (p.name, ROLES.index(p.role), p.group or ""))


def orphaned_projects(session: Session) -> list[str]:
    """Names of the projects with no owner who could act: none at all, only
    disabled users, or only groups without an enabled member."""
    query = select(Project.name).where(~active_owner_exists(Project.id)).order_by(Project.name)
    return list(session.scalars(query))


def _keep_an_owner(session: Session, project: Project, row: ProjectRole, admin: bool) -> None:
    """Refuse to take the last enabled owner's role away, unless an admin does it."""
    if row.role != "owner" or admin:
        return
    if not session.scalar(select(active_owner_exists(project.id, excluding_role=row.id))):
        raise PermissionDenied(
            f"This is the last owner of project '{project.name}': add another owner "
            "first, or ask an admin."
        )


def _find_project(session: Session, name: str) -> Project | None:
    return session.scalars(select(Project).where(Project.name == name)).one_or_none()


def _project(session: Session, project_name: str) -> Project:
    name = canonicalize_name(project_name)
    project = _find_project(session, name)
    if project is None:
        raise ProjectNotFound(name)
    return project


def _member(session: Session, user: str | None, group: str | None) -> User | Group:
    if (user is None) == (group is None):
        raise InvalidRequest("Name exactly one user or one group.")
    if user is not None:
        found_user = _find_user(session, user)
        if found_user is None:
            raise NotFound(f"There is no user named '{user}'.")
        return found_user
    found_group = _find_group(session, str(group))
    if found_group is None:
        raise NotFound(f"There is no group named '{group}'.")
    return found_group


def _find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name.lower())).one_or_none()


def _find_group(session: Session, name: str) -> Group | None:
    return session.scalars(select(Group).where(Group.name == name.lower())).one_or_none()


def _role_row(session: Session, project: Project, member: User | Group) -> ProjectRole | None:
    user_id, group_id = _member_ids(member)
    query = select(ProjectRole).where(ProjectRole.project_id == project.id)
    if user_id is not None:
        query = query.where(ProjectRole.user_id == user_id)
    else:
        query = query.where(ProjectRole.group_id == group_id)
    return session.scalars(query).one_or_none()


def _member_ids(member: User | Group) -> tuple[int | None, int | None]:
    return (member.id, None) if isinstance(member, User) else (None, member.id)


def _label(member: User | Group) -> str:
    return f"user '{member.name}'" if isinstance(member, User) else f"group '{member.name}'"
