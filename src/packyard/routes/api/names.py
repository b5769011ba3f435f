"""`/names/allowed`: the public names an administrator let in-house projects take.

The name guard (`publish/name_guard.py`) refuses a new in-house project whose
name a public project uses or resembles, since it would shadow that project;
a name on this list passes (the other checks still apply).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.db.governance import AllowedName
from packyard.publish import name_guard
from packyard.routes.api.deps import Caller, RequestOrigin, audited, require_admin

router = APIRouter(prefix="/names/allowed", tags=["names"])


class AllowedNameOut(BaseModel):
    name: str = Field(description="Normalised.")
    reason: str | None
    allowed_by: str
    created_at: datetime


class AllowIn(BaseModel):
    reason: str | None = None


def _out(row: AllowedName) -> AllowedNameOut:
    return AllowedNameOut(
        name=row.name, reason=row.reason, allowed_by=row.allowed_by, created_at=row.created_at
    )


@router.get("", summary="List allowed names")
def list_allowed(
    identity: Caller, session: Annotated[Session, audited("name-list")]
) -> list[AllowedNameOut]:
    require_admin(session, identity)
    return [_out(row) for row in name_guard.allowed_names(session)]


@router.put("/{name}", summary="Allow a name (again: replaces the reason)")
def allow(
    name: str,
    identity: Caller,
    session: Annotated[Session, audited("name-allow")],
    origin: RequestOrigin,
    body: AllowIn | None = None,
) -> AllowedNameOut:
    require_admin(session, identity)
    reason = body.reason if body is not None else None
    return _out(name_guard.allow_name(session, identity, name, reason, origin=origin))


@router.delete("/{name}", status_code=204, summary="Take a name off the list")
def disallow(
    name: str,
    identity: Caller,
    session: Annotated[Session, audited("name-disallow")],
    origin: RequestOrigin,
) -> Response:
    """A project already created under the name stays."""
    require_admin(session, identity)
    name_guard.disallow_name(session, identity, name, origin=origin)
    return Response(status_code=204)
