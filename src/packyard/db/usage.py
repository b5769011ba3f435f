"""Usage counts rolled up per day (UTC), kept for every replica and every restart.

Two tables: downloads per project and day, and the site's counts per day
(downloads, uploads, cache hits and misses, upstream errors, upstream latency
as a sum and a count, so that any period's mean is their quotient); and a
third, every project ever downloaded with its last day, which the period's
totals start from (see `downloads_by_project`). Each
worker adds what it counted since its last flush (`telemetry/usage.py`) with
one `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` per row: replicas
writing the same day at once add up, never overwrite each other.

The readers below answer the project page's chart, the admin dashboard and
the search ranking (`downloads_by_project`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Index,
    Integer,
    Select,
    String,
    case,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from packyard.db.models import Base, upsert

SITE_FIELDS = (
    "downloads",
    "uploads",
    "cache_hits",
    "cache_misses",
    "upstream_errors",
    "upstream_seconds",
    "upstream_requests",
)


class ProjectDay(Base):
    """Downloads of one project's files on one UTC day (`.metadata` files excluded)."""

    __tablename__ = "usage_project_days"
    # One project's days, by name then day, with the count: the project page's chart
    # and each project's total over a period read this index alone.
    __table_args__ = (
        Index("ix_usage_project_days_project_day", "project_name", "day", "downloads"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    project_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)


class DownloadedProject(Base):
    """A project downloaded at least once, and the last UTC day it was."""

    __tablename__ = "usage_projects"

    project_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_day: Mapped[date] = mapped_column(Date, index=True)


class SiteDay(Base):
    """The whole site's counts on one UTC day."""

    __tablename__ = "usage_site_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    uploads: Mapped[int] = mapped_column(Integer, default=0)
    cache_hits: Mapped[int] = mapped_column(Integer, default=0)
    cache_misses: Mapped[int] = mapped_column(Integer, default=0)
    upstream_errors: Mapped[int] = mapped_column(Integer, default=0)
    # Seconds until the upstream's response headers, summed over `upstream_requests`.
    upstream_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    upstream_requests: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True, slots=True)
class SiteTotals:
    """One day's (or a period's) site counts; `day` None for a period."""

    day: date | None
    downloads: int = 0
    uploads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    upstream_errors: int = 0
    upstream_seconds: float = 0.0
    upstream_requests: int = 0

    @property
    def hit_rate(self) -> float | None:
        """Cache hits over files sent, or None when none were sent."""
        sent = self.cache_hits + self.cache_misses
        return self.cache_hits / sent if sent else None

    @property
    def mean_upstream_seconds(self) -> float | None:
        return self.upstream_seconds / self.upstream_requests if self.upstream_requests else None


def add_project_days(session: Session, counts: Mapping[tuple[date, str], int]) -> None:
    """Add `counts` (downloads by (day, project)) to the stored days.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the rows could not be written.
    """
    if not counts:
        return
    rows = [{"day": d, "project_name": p, "downloads": n} for (d, p), n in sorted(counts.items())]
    insert = upsert(session, ProjectDay)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["day", "project_name"],
            set_={"downloads": ProjectDay.downloads + insert.excluded.downloads},
        ),
        rows,
    )
    last: dict[str, date] = {}
    for day, project in counts:
        last[project] = max(day, last.get(project, day))
    known = upsert(session, DownloadedProject)
    later = case(
        (known.excluded.last_day > DownloadedProject.last_day, known.excluded.last_day),
        else_=DownloadedProject.last_day,
    )
    session.execute(
        known.on_conflict_do_update(index_elements=["project_name"], set_={"last_day": later}),
        [{"project_name": p, "last_day": d} for p, d in sorted(last.items())],
    )


def add_site_days(session: Session, days: Mapping[date, Mapping[str, float]]) -> None:
    """Add `days` (for each day, counts by `SITE_FIELDS` name; missing ones are 0).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the rows could not be written.
    """
    if not days:
        return
    rows = [
        {"day": day, **{name: values.get(name, 0) for name in SITE_FIELDS}}
        for day, values in sorted(days.items())
    ]
    insert = upsert(session, SiteDay)
    update = {name: getattr(SiteDay, name) + getattr(insert.excluded, name) for name in SITE_FIELDS}
    session.execute(insert.on_conflict_do_update(index_elements=["day"], set_=update), rows)


def today() -> date:
    """The current UTC day: the roll-ups' calendar."""
    return datetime.now(UTC).date()


def first_day(days: int, until: date | None = None) -> date:
    """The first of the `days` days ending with `until` (today by default)."""
    return (until or today()) - timedelta(days=days - 1)


def _within(column: Mapped[date], days: int, until: date | None) -> ColumnElement[bool]:
    """`column` is one of the `days` days ending with `until` (today by default)."""
    last = until or today()
    return column.between(first_day(days, last), last)


def project_downloads(
    session: Session, project: str, days: int, until: date | None = None
) -> dict[date, int]:
    """Downloads of `project` (normalised name) on each of the last `days` days that had any."""
    rows = session.execute(
        select(ProjectDay.day, ProjectDay.downloads).where(
            ProjectDay.project_name == project, _within(ProjectDay.day, days, until)
        )
    )
    return {day: n for day, n in rows}


def _period_totals(session: Session, days: int, until: date | None) -> Select[str, int | None]:
    """Each project downloaded in the period, with its total there.

    On SQLite, summed per project by a seek into the `(project_name, day,
    downloads)` index for each project downloaded since the period began: a
    GROUP BY over the period's rows (300,000 for 10,000 projects over 30 days)
    sorts them all and took several times as long. PostgreSQL aggregates them
    in a hash table, in parallel, faster than 10,000 seeks: there, the GROUP BY
    (bench/usage_dashboard.py).
    """
    if session.get_bind().dialect.name == "postgresql":
        return (
            select(ProjectDay.project_name, func.sum(ProjectDay.downloads).label("total"))
            .where(_within(ProjectDay.day, days, until))
            .group_by(ProjectDay.project_name)
        )
    total = (
        select(func.sum(ProjectDay.downloads))
        .where(
            ProjectDay.project_name == DownloadedProject.project_name,
            _within(ProjectDay.day, days, until),
        )
        .scalar_subquery()
        .label("total")
    )
    return select(DownloadedProject.project_name, total).where(
        DownloadedProject.last_day >= first_day(days, until)
    )


def downloads_by_project(session: Session, days: int, until: date | None = None) -> dict[str, int]:
    """Downloads of every project downloaded in the last `days` days: its popularity
    here, for ranking (projects never downloaded are absent, i.e. 0)."""
    rows = session.execute(_period_totals(session, days, until))
    return {name: int(n) for name, n in rows if n}


def top_projects(
    session: Session, days: int, limit: int, until: date | None = None
) -> list[tuple[str, int]]:
    """The `limit` most downloaded projects of the last `days` days, most first
    (ties by name)."""
    totals = _period_totals(session, days, until).subquery()
    rows = session.execute(
        select(totals.c.project_name, totals.c.total)
        .where(totals.c.total > 0)
        .order_by(totals.c.total.desc(), totals.c.project_name)
        .limit(limit)
    )
    return [(name, int(n)) for name, n in rows]


def site_days(session: Session, days: int, until: date | None = None) -> list[SiteTotals]:
    """The site's counts on each of the last `days` days that had any, oldest first."""
    rows = session.scalars(
        select(SiteDay).where(_within(SiteDay.day, days, until)).order_by(SiteDay.day)
    )
    return [
        SiteTotals(row.day, **{name: getattr(row, name) for name in SITE_FIELDS}) for row in rows
    ]


def period_totals(rows: list[SiteTotals]) -> SiteTotals:
    """The sum of `rows` (`day` None)."""
    sums: dict[str, float] = dict.fromkeys(SITE_FIELDS, 0)
    for row in rows:
        for name in SITE_FIELDS:
            sums[name] += getattr(row, name)
    return SiteTotals(
        None,
        downloads=int(sums["downloads"]),
        uploads=int(sums["uploads"]),
        cache_hits=int(sums["cache_hits"]),
        cache_misses=int(sums["cache_misses"]),
        upstream_errors=int(sums["upstream_errors"]),
        upstream_seconds=sums["upstream_seconds"],
        upstream_requests=int(sums["upstream_requests"]),
    )


class UsagePopularity:
    """The search's `Popularity` source (`search/popularity.py`): downloads per
    project over the last `days` days, from the roll-ups."""

    def __init__(self, sessions: sessionmaker[Session], days: int = 30) -> None:
        self._sessions = sessions
        self.days = days

    def downloads(self) -> dict[str, int]:
        """Downloads per normalised project name; a project absent counts 0.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
        """
        with self._sessions() as session:
            return downloads_by_project(session, self.days)
