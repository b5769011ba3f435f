"""Reading the audit trail for the audit log page: filters and pages, newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from packaging.utils import canonicalize_name
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from packyard.db.audit import AuditEvent

PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Empty fields match everything. `project`: exact (normalised); `action`: exact;
    `actor`: any part of the actor (`alice` finds `user:alice` and her tokens)."""

    project: str = ""
    actor: str = ""
    action: str = ""

    def as_query(self) -> dict[str, str]:
        values = {"project": self.project, "actor": self.actor, "action": self.action}
        return {key: value for key, value in values.items() if value}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    outcome: str
    project: str | None
    version: str | None
    filename: str | None
    client_ip: str | None
    detail: str  # `key: value` pairs, for reading


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: tuple[AuditEntry, ...]
    page: int
    pages: int
    total: int
    actions: tuple[str, ...]  # every action recorded, for the filter's menu


def read_audit(session: Session, wanted: AuditFilter, page: int = 1) -> AuditPage:
    """One page of the events matching `wanted`, newest first (a page past the end
    is the last page)."""
    conditions = _conditions(wanted)
    query = select(AuditEvent).where(*conditions)
    total = session.scalar(select(func.count(AuditEvent.id)).where(*conditions)) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(page, 1), pages)
    rows = session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    )
    actions = tuple(
        session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    entries = tuple(
        AuditEntry(
            row.at,
            row.actor,
            row.action,
            row.outcome,
            row.project_name,
            row.version,
            row.filename,
            row.client_ip,
            _describe(row.detail),
        )
        for row in rows
    )
    return AuditPage(entries, page, pages, total, actions)


def _conditions(wanted: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.project:
        conditions.append(AuditEvent.project_name == canonicalize_name(wanted.project))
    if wanted.action:
        conditions.append(AuditEvent.action == wanted.action)
    if wanted.actor:
        conditions.append(AuditEvent.actor.contains(wanted.actor, autoescape=True))
    return conditions


def _describe(detail: str) -> str:
    """`{"reason": "broken", "files": []}` → `reason: broken` (empty values left out)."""
    try:
        values = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(values, dict):
        return detail
    parts = []
    for key, value in sorted(values.items()):
        if value in (None, "", [], {}):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    return "; ".join(parts)
