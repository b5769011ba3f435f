"""Usage counts: per-worker counts flushed into the daily roll-ups (`telemetry/usage.py`,
`db/usage.py`), the charts and the dashboard drawn from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy.orm import sessionmaker

from packyard.browser.dashboard import read_dashboard
from packyard.browser.usage import daily_chart
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.db.usage import (
    UsagePopularity,
    downloads_by_project,
    project_downloads,
    site_days,
    top_projects,
)
from packyard.publish.audit import record
from packyard.telemetry.usage import UsageCounts, UsageFlusher, utc_today
from tests.builders import make_local_store

DAY = date(2026, 12, 4)
NEXT = date(2026, 12, 5)


class Clock:
    """A settable UTC day."""

    def __init__(self, day: date) -> None:
        self.day = day

    def __call__(self) -> date:
        return self.day


def test_two_workers_flushes_add_up(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    clock = Clock(DAY)
    workers = [UsageCounts(clock), UsageCounts(clock)]
    flushers = [UsageFlusher(counts, local.sessions) for counts in workers]
    for _ in range(3):
        workers[0].download("alpha", cache_hit=True)
    workers[1].download("alpha", cache_hit=False)
    workers[1].download("beta", cache_hit=True)
    workers[0].upload()
    workers[1].upstream_latency(0.25)
    workers[1].upstream_latency(0.75)
    workers[0].upstream_error()
    for flusher in flushers:
        assert flusher.flush()
    # A second round adds to the same rows rather than replacing them.
    workers[1].download("alpha", cache_hit=True)
    assert flushers[1].flush()
    assert not workers[0]
    assert not workers[1]

    with local.sessions() as session:
        assert downloads_by_project(session, 1, until=DAY) == {"alpha": 5, "beta": 1}
        (site,) = site_days(session, 1, until=DAY)
    assert (site.day, site.downloads, site.uploads) == (DAY, 6, 1)
    assert (site.cache_hits, site.cache_misses, site.upstream_errors) == (5, 1, 1)
    assert site.upstream_requests == 2
    assert site.mean_upstream_seconds == pytest.approx(0.5)
    assert site.hit_rate == pytest.approx(5 / 6)


def test_counts_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'packyard.db'}"
    local = make_local_store(tmp_path, url)
    counts = UsageCounts(Clock(DAY))
    counts.download("alpha", cache_hit=True)
    assert UsageFlusher(counts, local.sessions).flush()
    local.engine.dispose()

    # A new process: a new engine and new, empty counts.
    engine = create_database_engine(url)
    sessions = session_factory_for(engine)
    again = UsageCounts(Clock(DAY))
    again.download("alpha", cache_hit=True)
    assert UsageFlusher(again, sessions).flush()
    with sessions() as session:
        assert project_downloads(session, "alpha", 30, until=DAY) == {DAY: 2}
    engine.dispose()


def test_days_are_utc_days_taken_when_counted(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    clock = Clock(DAY)
    counts = UsageCounts(clock)
    counts.download("alpha", cache_hit=True)  # 23:59 UTC on the 4th
    clock.day = NEXT
    counts.download("alpha", cache_hit=True)  # 00:00 UTC on the 5th, same flush
    counts.download("alpha", cache_hit=True)
    assert UsageFlusher(counts, local.sessions).flush()
    with local.sessions() as session:
        assert project_downloads(session, "alpha", 2, until=NEXT) == {DAY: 1, NEXT: 2}
        assert downloads_by_project(session, 1, until=NEXT) == {"alpha": 2}
        assert downloads_by_project(session, 1, until=DAY) == {"alpha": 1}
        assert [row.day for row in site_days(session, 30, until=NEXT)] == [DAY, NEXT]


def test_the_default_clock_is_the_utc_calendar() -> None:
    before = datetime.now(UTC).date()
    assert utc_today() in (before, datetime.now(UTC).date())


def test_a_failed_flush_keeps_its_counts(tmp_path: Path) -> None:
    # A database without the tables: every write fails.
    engine = create_database_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    counts = UsageCounts(Clock(DAY))
    counts.download("alpha", cache_hit=True)
    counts.upstream_latency(0.5)
    flusher = UsageFlusher(counts, sessionmaker(engine))
    assert not flusher.flush()
    assert counts.projects == {(DAY, "alpha"): 1}
    assert counts.site[DAY]["upstream_seconds"] == 0.5
    engine.dispose()


@pytest.mark.anyio
async def test_the_flusher_writes_periodically_and_at_shutdown(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    counts = UsageCounts(Clock(DAY))
    flusher = UsageFlusher(counts, local.sessions, flush_seconds=0.05)

    def stored() -> dict[str, int]:
        with local.sessions() as session:
            return downloads_by_project(session, 30, until=DAY)

    async with flusher.running():
        counts.download("alpha", cache_hit=True)
        with anyio.fail_after(5):
            while stored() != {"alpha": 1}:  # noqa: ASYNC110 - polls the database
                await anyio.sleep(0.02)
        counts.download("beta", cache_hit=True)
    assert stored() == {"alpha": 1, "beta": 1}


def test_top_projects_most_first_ties_by_name(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    counts = UsageCounts(Clock(DAY))
    for name, n in (("b", 2), ("a", 2), ("c", 5), ("d", 1)):
        for _ in range(n):
            counts.download(name, cache_hit=True)
    assert UsageFlusher(counts, local.sessions).flush()
    with local.sessions() as session:
        assert top_projects(session, 30, 3, until=DAY) == [("c", 5), ("a", 2), ("b", 2)]


def test_a_chart_has_a_bar_per_day_and_says_what_it_shows() -> None:
    chart = daily_chart("downloads", {DAY: 4, NEXT: 1}, 30, until=NEXT)
    assert len(chart.bars) == 30
    assert [(bar.day, bar.height) for bar in chart.bars[-2:]] == [(DAY, 60), (NEXT, 15)]
    assert all(bar.height == 0 for bar in chart.bars[:-2])
    assert chart.summary == (
        "5 downloads in the last 30 days (2026-11-06 to 2026-12-05); the most on 2026-12-04: 4."
    )
    empty = daily_chart("uploads", {}, 7, until=NEXT)
    assert empty.summary == "No uploads in the last 7 days."


def test_the_dashboard_adds_up_the_period(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    clock = Clock(DAY)
    counts = UsageCounts(clock)
    counts.download("alpha", cache_hit=True)
    clock.day = NEXT
    counts.download("alpha", cache_hit=False)
    counts.download("beta", cache_hit=True)
    counts.upload()
    assert UsageFlusher(counts, local.sessions).flush()
    with local.sessions.begin() as session:
        record(session, actor="user:alice", action="upload", project="alpha", filename="a.whl")
        record(
            session,
            actor="user:bob",
            action="upload",
            outcome="refused",
            project="alpha",
            reason="File already exists",
        )
    with local.sessions() as session:
        dashboard = read_dashboard(session, 30, until=NEXT)
    assert (dashboard.totals.downloads, dashboard.totals.uploads) == (3, 1)
    assert dashboard.totals.hit_rate == pytest.approx(2 / 3)
    assert dashboard.top == (("alpha", 2), ("beta", 1))
    assert [bar.value for bar in dashboard.downloads.bars[-2:]] == [1, 2]
    assert [(e.actor, e.what) for e in dashboard.recent_uploads] == [("user:alice", "a.whl")]
    assert [(e.actor, e.reason) for e in dashboard.recent_refusals] == [
        ("user:bob", "File already exists")
    ]


def test_the_search_popularity_source_counts_the_last_30_days(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    clock = Clock(date(2000, 1, 1))  # long ago: outside the window
    counts = UsageCounts(clock)
    counts.download("old", cache_hit=True)
    clock.day = utc_today()
    counts.download("new", cache_hit=True)
    counts.download("new", cache_hit=False)
    assert UsageFlusher(counts, local.sessions).flush()
    assert UsagePopularity(local.sessions).downloads() == {"new": 2}
