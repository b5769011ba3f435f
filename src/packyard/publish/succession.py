"""No orphans: who takes over the projects a person leaves without an owner.

When a user is disabled (`disable`: the CLI, the API and the admin pages),
retired by an admin (`retire`), removed from the directory or inactive for too
long, every project they own directly, and that has no other owner who could act
(an enabled user, or a group with an enabled member other than them), is
handed to one successor:

1. the successor an admin named (`packyard user retire NAME --to SUCCESSOR`);
2. else their manager (`User.manager`, from the directory), if that is an
   enabled user here;
3. else the group `[auth.succession] fallback_group`, if it exists and has an
   enabled member;
4. else nobody: the project stays orphaned (`ownership.orphaned_projects` lists
   it), and the audit trail says why (`project-orphaned`).

The successor becomes an owner (a maintainer is promoted); the leaver's own role
row is kept for the record, as disabling keeps it (a disabled user's roles give
no right). Projects the leaver owns only through a group are the group's, and
are left to it. Each hand-over is a `Handover` row, which is also the
successor's notice on their account page until they (or, for a group, any
member) dismiss it, and an audit event `project-handover`, whose JSON log line
is the event a watcher sees.

Nothing here commits: the caller does, so the hand-over lands with the change
that caused it, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.permissions import active_owner_exists
from packyard.db.accounts import Group, GroupMember, User
from packyard.db.governance import ProjectRole
from packyard.db.handovers import HANDOVER_REASONS, Handover
from packyard.db.models import Project
from packyard.errors import InvalidRequest, NotFound
from packyard.publish import accounts
from packyard.publish.audit import Origin, record
from packyard.publish.ownership import find_owner


@dataclass(frozen=True, slots=True)
class HandoverResult:
    """One project the leaver owned alone, and who owns it now.

    `to_user` and `to_group` both None: nobody could take it, it is orphaned,
    and `why` says what was missing.
    """

    project: str
    to_user: str | None = None
    to_group: str | None = None
    why: str | None = None

    @property
    def successor(self) -> str | None:
        """`bob`, `group:ops`, or None when the project is left orphaned."""
        if self.to_user is not None:
            return self.to_user
        return f"group:{self.to_group}" if self.to_group is not None else None


@dataclass(frozen=True, slots=True)
class Notice:
    """A project handed to the reader, directly or through their `group`, not dismissed yet."""

    id: int
    project: str
    from_user: str
    group: str | None
    reason: str
    at: datetime


def hand_over(
    session: Session,
    user: User,
    *,
    reason: str,
    successor: User | Group | None = None,
    fallback_group: str | None,
    actor: Identity,
    origin: Origin,
) -> list[HandoverResult]:
    """Hand every project `user` leaves without an owner to a successor (module doc).

    Args:
        user: the leaver (disabled already, or still enabled when inactive).
        reason: one of `HANDOVER_REASONS`, kept with each hand-over.
        successor: the one to hand to; None: the manager, else `fallback_group`.
        fallback_group: `[auth.succession] fallback_group`.

    Returns the projects concerned, by name: each handed over, or orphaned.

    Raises:
        InvalidRequest: an unknown reason, or `successor` is `user`.
    """
    if reason not in HANDOVER_REASONS:
        raise InvalidRequest(f"Unknown hand-over reason {reason!r}: use one of {HANDOVER_REASONS}.")
    if isinstance(successor, User) and successor.id == user.id:
        raise InvalidRequest(_own_successor(user))
    projects = list(session.scalars(_left_alone(user)))
    if not projects:
        return []
    chosen: User | Group | None = successor
    note = "named"
    if chosen is None:
        chosen, note = default_successor(session, user, fallback_group)
    return [
        _hand(session, project, user, chosen, note, reason=reason, actor=actor, origin=origin)
        for project in projects
    ]


def disable(
    session: Session, name: str, *, fallback_group: str | None, actor: Identity, origin: Origin
) -> list[HandoverResult]:
    """Disable the user `name` (`accounts.disable_user`) and hand over, as "disabled",
    the projects they leave without an owner.

    Raises:
        NotFound: no such user.  Conflict: the user is disabled already.
    """
    accounts.disable_user(session, name, actor=actor, origin=origin)
    return hand_over(
        session,
        _user(session, name),
        reason="disabled",
        fallback_group=fallback_group,
        actor=actor,
        origin=origin,
    )


def retire(
    session: Session,
    name: str,
    *,
    to: str | None,
    fallback_group: str | None,
    actor: Identity,
    origin: Origin,
) -> list[HandoverResult]:
    """Disable the user `name` (unless they are already) and hand over, as "retired",
    the projects they leave without an owner: to `to` (`USER`, `user:USER` or
    `group:GROUP`), or without it to their manager, else `fallback_group`.

    Raises:
        NotFound: no such user, or no such successor.
        InvalidRequest: the successor is the user themself, a disabled user, a
            group with no enabled member, or a bare name both a user's and a group's.
    """
    user = _user(session, name)
    successor = _named_successor(session, user, to) if to else None
    if not user.disabled:
        accounts.disable_user(session, user.name, actor=actor, origin=origin)
    results = hand_over(
        session,
        user,
        reason="retired",
        successor=successor,
        fallback_group=fallback_group,
        actor=actor,
        origin=origin,
    )
    record(
        session,
        actor=actor.actor,
        action="user-retire",
        origin=origin,
        user=user.name,
        to=to or None,
        projects={result.project: result.successor for result in results},
    )
    return results


def notices(session: Session, user_name: str) -> list[Notice]:
    """The hand-overs to `user_name`, or to a group they are a member of, that no
    one dismissed yet, newest first."""
    query = _addressed_to(user_name).where(Handover.seen_at.is_(None))
    return [
        Notice(row.id, row.project_name, row.from_user, row.to_group, row.reason, row.at)
        for row in session.scalars(query.order_by(Handover.at.desc(), Handover.id.desc()))
    ]


def dismiss(session: Session, user_name: str, handover_id: int) -> None:
    """Mark a hand-over notice as seen: for a group's, seen by all its members.
    Dismissing a notice twice changes nothing.

    Raises:
        NotFound: no hand-over of that number was addressed to `user_name` or
            to one of their groups.
    """
    query = _addressed_to(user_name).where(Handover.id == handover_id)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound("You have no such notice of a project handed over.")
    if row.seen_at is None:
        row.seen_at = datetime.now(UTC)


def _left_alone(user: User) -> Select[Project]:
    """The projects `user` owns directly that have no other owner who could act."""
    return (
        select(Project)
        .join(ProjectRole, ProjectRole.project_id == Project.id)
        .where(ProjectRole.user_id == user.id, ProjectRole.role == "owner")
        .where(~active_owner_exists(Project.id, excluding_user=user.id))
        .order_by(Project.name)
    )


def default_successor(
    session: Session, user: User, fallback_group: str | None
) -> tuple[User | Group | None, str]:
    """The manager, else the fallback group, with how it was chosen; or None and why
    neither could take over."""
    manager = _find_user(session, user.manager) if user.manager is not None else None
    if user.manager is None:
        no_manager = f"'{user.name}' has no manager known"
    elif manager is None:
        no_manager = f"their manager '{user.manager}' is not a user here"
    elif manager.id == user.id:
        no_manager = f"their manager '{user.manager}' is themself"
    elif manager.disabled:
        no_manager = f"their manager '{user.manager}' is disabled"
    else:
        return manager, "manager"
    if fallback_group is None:
        return None, f"{no_manager}, and no [auth.succession] fallback_group is set"
    group = session.scalars(select(Group).where(Group.name == fallback_group.lower())).first()
    if group is None:
        return None, f"{no_manager}, and the fallback group '{fallback_group}' does not exist"
    if not _has_enabled_member(group, user):
        return None, f"{no_manager}, and the fallback group '{group.name}' has no enabled member"
    return group, "fallback-group"


def _hand(
    session: Session,
    project: Project,
    user: User,
    successor: User | Group | None,
    note: str,
    *,
    reason: str,
    actor: Identity,
    origin: Origin,
) -> HandoverResult:
    """Make `successor` an owner of `project` and record it; None: record the orphan.
    `note`: how the successor was chosen, or why there is none."""
    if successor is None:
        record(
            session,
            actor=actor.actor,
            action="project-orphaned",
            origin=origin,
            project=project.name,
            user=user.name,
            reason=reason,
            why=note,
        )
        return HandoverResult(project.name, why=note)
    now = datetime.now(UTC)
    _make_owner(session, project, successor, now)
    result = (
        HandoverResult(project.name, to_user=successor.name)
        if isinstance(successor, User)
        else HandoverResult(project.name, to_group=successor.name)
    )
    session.add(
        Handover(
            project_name=project.name,
            from_user=user.name,
            to_user=result.to_user,
            to_group=result.to_group,
            reason=reason,
            actor=actor.actor,
            at=now,
        )
    )
    record(
        session,
        actor=actor.actor,
        action="project-handover",
        origin=origin,
        project=project.name,
        from_user=user.name,
        to=result.successor,
        reason=reason,
        via=note,
    )
    return result


def _make_owner(session: Session, project: Project, member: User | Group, now: datetime) -> None:
    """Give `member` the owner role on `project`, promoting a maintainer role it holds."""
    is_user = isinstance(member, User)
    query = select(ProjectRole).where(
        ProjectRole.project_id == project.id,
        (ProjectRole.user_id if is_user else ProjectRole.group_id) == member.id,
    )
    existing = session.scalars(query).one_or_none()
    if existing is not None:
        existing.role = "owner"
        return
    row = ProjectRole(project_id=project.id, role="owner", created_at=now)
    if is_user:
        row.user_id = member.id
    else:
        row.group_id = member.id
    session.add(row)


def _named_successor(session: Session, user: User, spec: str) -> User | Group:
    """The user or group `spec` names, able to take over `user`'s projects."""
    kind, _, target = spec.partition(":") if ":" in spec else ("", "", spec)
    if kind in ("", "user") and target.strip().lower() == user.name:
        raise InvalidRequest(_own_successor(user))
    found = find_owner(session, spec.strip())
    if isinstance(found, Group) and not _has_enabled_member(found, user):
        raise InvalidRequest(
            f"The group '{found.name}' has no enabled member to take over the projects "
            f"of '{user.name}'."
        )
    return found


def _own_successor(user: User) -> str:
    return (
        f"'{user.name}' cannot be their own successor: name another user, or a group as group:NAME."
    )


def _has_enabled_member(group: Group, leaver: User) -> bool:
    return any(not member.disabled and member.id != leaver.id for member in group.members)


def _addressed_to(user_name: str) -> Select[Handover]:
    """Hand-overs to the user `user_name` or to any group they are a member of."""
    name = user_name.lower()
    their_groups = (
        select(Group.name)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .join(User, User.id == GroupMember.user_id)
        .where(User.name == name)
    )
    return select(Handover).where(
        or_(Handover.to_user == name, Handover.to_group.in_(their_groups))
    )


def _find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name.lower())).one_or_none()


def _user(session: Session, name: str) -> User:
    user = _find_user(session, name)
    if user is None:
        raise NotFound(f"There is no user named '{name}'.")
    return user
