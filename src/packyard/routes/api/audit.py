"""`/audit`: the audit trail, newest first, filtered and paginated (administrators only).

Pages are cut by event number (`before`), not by offset: new events arriving
between two requests neither repeat nor skip an event of the next page.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from packyard.db.audit import AuditEvent
from packyard.routes.api.deps import Caller, audited, require_admin

router = APIRouter(prefix="/audit", tags=["audit"])
MAX_PAGE = 500


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    outcome: str = Field(description="`ok` or `refused`.")
    project: str | None
    version: str | None
    filename: str | None
    client_ip: str | None
    user_agent: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; None: this is the last."
    )


@router.get("", summary="The audit log, newest first")
def audit_log(
    identity: Caller,
    session: Annotated[Session, audited("audit-list")],
    project: str | None = None,
    actor: Annotated[
        str | None,
        Query(
            description="An actor as recorded (`token:alice/pky_…`), or a user name: "
            "every credential of that user."
        ),
    ] = None,
    action: str | None = None,
    since: Annotated[datetime | None, Query(description="Only events at or after this.")] = None,
    before: Annotated[int | None, Query(description="Only events older than this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    require_admin(session, identity)
    query = select(AuditEvent).where(*_conditions(project, actor, action, since))
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(events=[_out(row) for row in rows], next_before=rows[-1].id if more else None)


def _conditions(
    project: str | None, actor: str | None, action: str | None, since: datetime | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if project is not None:
        conditions.append(AuditEvent.project_name == canonicalize_name(project))
    if actor is not None and ":" in actor:
        conditions.append(AuditEvent.actor == actor)
    elif actor is not None:
        # A user's password sign-ins and every one of their tokens (Identity.actor).
        name = actor.lower()
        conditions.append(
            or_(AuditEvent.actor == f"user:{name}", AuditEvent.actor.startswith(f"token:{name}/"))
        )
    if action is not None:
        conditions.append(AuditEvent.action == action)
    if since is not None:
        conditions.append(AuditEvent.at >= since)
    return conditions


def _out(row: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        project=row.project_name,
        version=row.version,
        filename=row.filename,
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        detail=json.loads(row.detail or "{}"),
    )
