"""`/groups`: list, create and delete groups, add and remove members (administrators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.publish import accounts
from packyard.routes.api.deps import Caller, RequestOrigin, audited, require_admin

router = APIRouter(prefix="/groups", tags=["groups"])


class GroupOut(BaseModel):
    name: str
    members: list[str]
    created_at: datetime


class NewGroup(BaseModel):
    name: str = Field(description="1 to 100 of a-z 0-9 . _ -; stored lower-case.")


class NewMember(BaseModel):
    user: str


@router.get("", summary="List groups and their members")
def list_groups(
    identity: Caller, session: Annotated[Session, audited("group-list")]
) -> list[GroupOut]:
    require_admin(session, identity)
    return [
        GroupOut(name=group.name, members=list(group.members), created_at=group.created_at)
        for group in accounts.list_groups(session)
    ]


@router.post("", status_code=201, summary="Create a group")
def create_group(
    body: NewGroup,
    identity: Caller,
    session: Annotated[Session, audited("group-add")],
    origin: RequestOrigin,
) -> GroupOut:
    require_admin(session, identity)
    group = accounts.create_group(session, body.name, actor=identity, origin=origin)
    return GroupOut(name=group.name, members=[], created_at=group.created_at)


@router.post("/{group}/members", status_code=204, summary="Add a member")
def add_member(
    group: str,
    body: NewMember,
    identity: Caller,
    session: Annotated[Session, audited("group-member-add")],
    origin: RequestOrigin,
) -> Response:
    require_admin(session, identity)
    accounts.add_member(session, group, body.user, actor=identity, origin=origin)
    return Response(status_code=204)


@router.delete("/{group}/members/{user}", status_code=204, summary="Remove a member")
def remove_member(
    group: str,
    user: str,
    identity: Caller,
    session: Annotated[Session, audited("group-member-remove")],
    origin: RequestOrigin,
) -> Response:
    require_admin(session, identity)
    accounts.remove_member(session, group, user, actor=identity, origin=origin)
    return Response(status_code=204)


class DeletedGroup(BaseModel):
    name: str
    orphaned_projects: list[str] = Field(
        description="Projects the group owned that have no enabled owner now."
    )


@router.delete("/{group}", summary="Delete a group")
def delete_group(
    group: str,
    identity: Caller,
    session: Annotated[Session, audited("group-delete")],
    origin: RequestOrigin,
) -> DeletedGroup:
    """Its members stay users; its roles on projects go."""
    require_admin(session, identity)
    orphaned = accounts.delete_group(session, group, actor=identity, origin=origin)
    return DeletedGroup(name=group.lower(), orphaned_projects=orphaned)
