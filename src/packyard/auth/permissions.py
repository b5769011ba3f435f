"""What an identity may do to an in-house project: upload to it, manage its roles.

The rules, in order:

1. a credential limited to some projects (a scoped token, a CI token) touches
   no other project;
2. a disabled user passes nothing, whatever their roles (checked against the
   database, not the identity, which may be older than the change);
3. no one uploads to an archived or quarantined project (PEP 792);
4. admins and the command line may do anything else;
5. a CI identity may upload to the projects its configuration grants (rule 1);
6. owners and maintainers, directly or through a group, may upload;
   only owners may manage roles.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, SQLColumnExpression, or_, select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.accounts import GroupMember, User
from packyard.db.governance import ProjectRole
from packyard.db.models import Project
from packyard.errors import PermissionDenied

UPLOAD_ROLES = frozenset({"owner", "maintainer"})
# PEP 792: archived and quarantined projects MUST NOT accept uploads.
CLOSED_STATUSES = frozenset({"archived", "quarantined"})


def may_read(identity: Identity, project: str | None) -> bool:
    """Whether `identity` may read `project` where reading needs credentials
    (`auth.read_requires_auth`); `project` None: something beyond one project (the
    project list, search, the web pages, the API).

    A CI identity reads only the projects its mapping grants it (to publish, and
    to check what it published): a CI job's token, copied out of a job log, must
    not open the whole repository. Every other identity that may sign in reads
    everything: the repository is one organisation's, and a token scoped to some
    projects limits what it may change, not what its user may see.
    """
    if reads_everything(identity):
        return True
    return project is not None and identity.may_touch(project)


def reads_everything(identity: Identity) -> bool:
    """Whether `identity` reads every project (`may_read`): all but CI identities."""
    return identity.kind != "ci"


def upload_denied(identity: Identity, project_name: str) -> PermissionDenied:
    """The Warehouse wording (STANDARDS §2.4) for a refused upload."""
    if identity.kind in ("token", "ci") and not identity.may_touch(project_name):
        return PermissionDenied(
            f"The given token isn't allowed to upload to project '{project_name}'."
        )
    return PermissionDenied(
        f"The user '{identity.name}' isn't allowed to upload to project '{project_name}'."
    )


def active_user(session: Session, identity: Identity) -> User | None:
    """The identity's user as stored now, or None for `ci` and `cli` identities.

    Raises:
        PermissionDenied: the user is disabled or no longer exists.
    """
    if identity.user_id is None:
        return None
    user = session.get(User, identity.user_id)
    if user is None or user.disabled:
        raise PermissionDenied(f"The user '{identity.name}' is disabled.")
    return user


def is_admin(identity: Identity, user: User | None) -> bool:
    """Admin rights, from the stored user when there is one (it may have changed)."""
    if user is not None:
        return user.is_admin
    return identity.kind == "cli" and identity.is_admin


def roles_of(session: Session, user_id: int, project_id: int) -> frozenset[str]:
    """The roles a user holds on a project, directly or through any of their groups."""
    direct = select(ProjectRole.role).where(
        ProjectRole.project_id == project_id, ProjectRole.user_id == user_id
    )
    through_groups = (
        select(ProjectRole.role)
        .join(GroupMember, GroupMember.group_id == ProjectRole.group_id)
        .where(ProjectRole.project_id == project_id, GroupMember.user_id == user_id)
    )
    return frozenset(session.scalars(direct.union(through_groups)))


def require_upload(session: Session, identity: Identity, project: Project) -> None:
    """Pass if `identity` may upload a file to the existing `project`.

    Raises:
        PermissionDenied: any rule of this module refuses it; the message says which.
    """
    if not identity.may_touch(project.name):
        raise upload_denied(identity, project.name)
    user = active_user(session, identity)
    if project.status in CLOSED_STATUSES:
        raise PermissionDenied(
            f"Project '{project.name}' is {project.status} and accepts no new uploads."
        )
    if is_admin(identity, user) or identity.kind == "ci":
        return
    if user is None or not roles_of(session, user.id, project.id) & UPLOAD_ROLES:
        raise upload_denied(identity, project.name)


def require_manage(session: Session, identity: Identity, project: Project) -> bool:
    """Pass if `identity` may add and remove the project's owners and maintainers.

    Returns whether the identity is an admin (admins may also remove the last owner).

    Raises:
        PermissionDenied: the identity is not an owner of the project nor an
            admin, is disabled, or its credential is limited to other projects.
    """
    user = active_user(session, identity)
    if identity.may_touch(project.name):
        if is_admin(identity, user):
            return True
        if user is not None and "owner" in roles_of(session, user.id, project.id):
            return False
    raise PermissionDenied(
        f"'{identity.name}' isn't allowed to manage the owners of project '{project.name}': "
        "only its owners and admins are."
    )


def active_owner_exists(
    project_id: SQLColumnExpression[int] | int,
    excluding_role: int | None = None,
    excluding_user: int | None = None,
) -> ColumnElement[bool]:
    """SQL: the project has an owner role held by an enabled user, or by a group
    with at least one enabled member (optionally leaving one role row out, or one
    user: their own role and their membership of owning groups)."""
    user_owner = (
        select(ProjectRole.id)
        .join(User, User.id == ProjectRole.user_id)
        .where(ProjectRole.project_id == project_id, ProjectRole.role == "owner")
        .where(User.disabled.is_(False))
    )
    group_owner = (
        select(ProjectRole.id)
        .join(GroupMember, GroupMember.group_id == ProjectRole.group_id)
        .join(User, User.id == GroupMember.user_id)
        .where(ProjectRole.project_id == project_id, ProjectRole.role == "owner")
        .where(User.disabled.is_(False))
    )
    if excluding_role is not None:
        user_owner = user_owner.where(ProjectRole.id != excluding_role)
        group_owner = group_owner.where(ProjectRole.id != excluding_role)
    if excluding_user is not None:
        user_owner = user_owner.where(User.id != excluding_user)
        group_owner = group_owner.where(User.id != excluding_user)
    return or_(user_owner.exists(), group_owner.exists())
