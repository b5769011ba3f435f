"""`/projects/{project}/roles`: owners and maintainers of in-house projects (its
owners and administrators), and `/projects/orphaned` (administrators)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.permissions import require_manage
from packyard.db.models import Project
from packyard.errors import ProjectNotFound
from packyard.publish import ownership
from packyard.publish.name_guard import check_name
from packyard.routes.api.deps import Caller, RequestOrigin, audited, require_admin

router = APIRouter(prefix="/projects", tags=["projects"])

Role = Literal["owner", "maintainer"]
MemberKind = Literal["user", "group"]


class RoleOut(BaseModel):
    role: Role
    kind: MemberKind
    name: str
    disabled: bool = Field(description="A disabled user's role stays, but grants nothing.")
    created_at: datetime


class NewRole(BaseModel):
    role: Role
    user: str | None = Field(default=None, description="Exactly one of user and group.")
    group: str | None = None


class OrphanedProjects(BaseModel):
    projects: list[str] = Field(description="Projects without an owner who could act.")


@router.get("/orphaned", summary="Projects without an active owner (administrators)")
def orphaned_projects(
    identity: Caller, session: Annotated[Session, audited("project-orphaned-list")]
) -> OrphanedProjects:
    require_admin(session, identity)
    return OrphanedProjects(projects=ownership.orphaned_projects(session))


@router.get("/{project}/roles", summary="List a project's owners and maintainers")
def list_roles(
    project: str, identity: Caller, session: Annotated[Session, audited("role-list")]
) -> list[RoleOut]:
    """For the project's owners and administrators, who manage these roles."""
    name = check_name(project)
    row = session.scalar(select(Project).where(Project.name == name))
    if row is None:
        raise ProjectNotFound(name)
    require_manage(session, identity, row)
    return [
        RoleOut(
            role=entry.role,  # type: ignore[arg-type]  # ROLES: "owner", "maintainer"
            kind=entry.kind,  # type: ignore[arg-type]  # RoleEntry: "user" or "group"
            name=entry.name,
            disabled=entry.disabled,
            created_at=entry.created_at,
        )
        for entry in ownership.list_roles(session, name)
    ]


@router.post("/{project}/roles", status_code=201, summary="Give a user or group a role")
def add_role(
    project: str,
    body: NewRole,
    identity: Caller,
    session: Annotated[Session, audited("role-add")],
    origin: RequestOrigin,
) -> RoleOut:
    """A member that holds the other role is moved to this one."""
    ownership.add_role(
        session, identity, project, body.role, user=body.user, group=body.group, origin=origin
    )
    session.flush()
    kind: MemberKind = "user" if body.user is not None else "group"
    member = (body.user or body.group or "").lower()
    entries = ownership.list_roles(session, project)
    entry = next(e for e in entries if (e.kind, e.name) == (kind, member))
    return RoleOut(
        role=body.role,
        kind=kind,
        name=entry.name,
        disabled=entry.disabled,
        created_at=entry.created_at,
    )


@router.delete("/{project}/roles/{kind}/{name}", status_code=204, summary="Take a role away")
def remove_role(
    project: str,
    kind: MemberKind,
    name: str,
    identity: Caller,
    session: Annotated[Session, audited("role-remove")],
    origin: RequestOrigin,
) -> Response:
    """Only an administrator may take the last owner's role away."""
    member = {kind: name}
    ownership.remove_role(session, identity, project, origin=origin, **member)
    return Response(status_code=204)
