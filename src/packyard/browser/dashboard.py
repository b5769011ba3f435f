"""The admins' site dashboard: usage over a period from the daily roll-ups
(`db/usage.py`), and the latest uploads and refusals from the audit trail
(`db/audit.py`).

Every figure comes from a handful of indexed queries: the site's days (one
row per day), the top projects (one aggregate over the period's project
rows) and two short reads of the audit trail, newest first by its `at`
index. bench/usage_dashboard.py times them over a year of roll-ups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.browser.usage import DailyChart, daily_chart
from packyard.db.audit import AuditEvent
from packyard.db.usage import SiteTotals, period_totals, site_days, top_projects

DASHBOARD_DAYS = 30
TOP_PROJECTS = 10
RECENT = 10


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """An upload or a refusal, as the dashboard lists it."""

    at: datetime
    actor: str
    action: str
    project: str | None
    what: str | None  # the filename, else the version
    reason: str | None  # a refusal's reason


@dataclass(frozen=True, slots=True)
class Dashboard:
    days: int
    downloads: DailyChart
    uploads: DailyChart
    totals: SiteTotals
    top: tuple[tuple[str, int], ...]
    recent_uploads: tuple[RecentEvent, ...]
    recent_refusals: tuple[RecentEvent, ...]


def read_dashboard(
    session: Session, days: int = DASHBOARD_DAYS, until: date | None = None
) -> Dashboard:
    """The dashboard over the `days` UTC days ending with `until` (today by default).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    rows = site_days(session, days, until)
    downloads = daily_chart("downloads", {r.day: r.downloads for r in rows if r.day}, days, until)
    uploads = daily_chart("uploads", {r.day: r.uploads for r in rows if r.day}, days, until)
    return Dashboard(
        days,
        downloads,
        uploads,
        period_totals(rows),
        tuple(top_projects(session, days, TOP_PROJECTS, until)),
        _recent(session, AuditEvent.action == "upload", AuditEvent.outcome == "ok"),
        _recent(session, AuditEvent.outcome == "refused"),
    )


def _recent(session: Session, *conditions: object) -> tuple[RecentEvent, ...]:
    rows = session.scalars(
        select(AuditEvent)
        .where(*conditions)  # type: ignore[arg-type]
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(RECENT)
    )
    return tuple(
        RecentEvent(
            row.at,
            row.actor,
            row.action,
            row.project_name,
            row.filename or row.version,
            _reason(row.detail) if row.outcome == "refused" else None,
        )
        for row in rows
    )


def _reason(detail: str) -> str | None:
    """The `reason` of a refusal's detail (a JSON object as text)."""
    try:
        values = json.loads(detail)
    except ValueError:
        return detail or None
    reason = values.get("reason") if isinstance(values, dict) else None
    return str(reason) if reason else None
