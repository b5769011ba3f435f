"""The admin dashboard's data over a year of daily roll-ups (target: under 200 ms).

Fills a migrated database with `--days` days (365) of per-project roll-ups for
`--projects` projects (10,000), every project downloaded every day: the worst
case, 3.65 million rows in `usage_project_days`. Adds the site's days and an
audit trail of `--audit` events (uploads, and one refusal in ten). Then times,
`--repeats` times each, median and worst:

- `read_dashboard` (what `/admin/dashboard` reads: the site's 30 days, the top
  10 projects over 30 days, the latest uploads and refusals);
- `downloads_by_project(session, 30)` (the search ranking's popularity);
- one project's 30-day chart (what a project page adds).

    .venv/bin/python bench/usage_dashboard.py [--postgres] [--projects 10000] [--days 365]

`--postgres` also runs on a throwaway PostgreSQL server (`tests/postgres.py`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packyard.browser.dashboard import read_dashboard  # noqa: E402
from packyard.browser.usage import ProjectDownloads  # noqa: E402
from packyard.db.engine import create_database_engine, migrate, session_factory_for  # noqa: E402
from packyard.db.usage import downloads_by_project  # noqa: E402

UNTIL = date.today()


def fill(engine: Engine, projects: int, days: int, audit: int) -> float:
    """Write the roll-ups and the audit trail with set-based SQL; the seconds it took."""
    start = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        if postgres:
            connection.execute(
                text(
                    "INSERT INTO usage_project_days (day, project_name, downloads) "
                    "SELECT CAST(:until AS date) - d, 'project-' || p, 1 + (p * 7 + d) % 97 "
                    "+ 100000 / (p + 1) "
                    "FROM generate_series(0, :days - 1) d, generate_series(0, :projects - 1) p"
                ),
                {"until": UNTIL, "days": days, "projects": projects},
            )
        else:
            connection.execute(
                text(
                    "WITH RECURSIVE d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d "
                    "WHERE n + 1 < :days), p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p "
                    "WHERE n + 1 < :projects) "
                    "INSERT INTO usage_project_days (day, project_name, downloads) "
                    "SELECT date(:until, '-' || d.n || ' days'), 'project-' || p.n, "
                    "1 + (p.n * 7 + d.n) % 97 + 100000 / (p.n + 1) FROM d, p"
                ),
                {"until": UNTIL.isoformat(), "days": days, "projects": projects},
            )
        # Every project was downloaded today (`db/usage.py:DownloadedProject`).
        connection.execute(
            text(
                "INSERT INTO usage_projects (project_name, last_day) "
                "SELECT project_name, max(day) FROM usage_project_days GROUP BY project_name"
            )
        )
        day_expression = (
            "CAST(:until AS date) - n" if postgres else "date(:until, '-' || n || ' days')"
        )
        series = (
            "generate_series(0, :days - 1) n"
            if postgres
            else "(WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s "
            "WHERE n + 1 < :days) SELECT n FROM s)"
        )
        until = UNTIL if postgres else UNTIL.isoformat()
        connection.execute(
            text(
                "INSERT INTO usage_site_days (day, downloads, uploads, cache_hits, cache_misses, "  # noqa: S608
                "upstream_errors, upstream_seconds, upstream_requests) "
                f"SELECT {day_expression}, 50000 + n, 20, 45000 + n, 5000, n % 3, 12.5, 400 "
                f"FROM {series}"
            ),
            {"until": until, "days": days},
        )
        audit_series = (
            "generate_series(0, :audit - 1) n"
            if postgres
            else "(WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s "
            "WHERE n + 1 < :audit) SELECT n FROM s)"
        )
        at = (
            "now() - n * interval '1 minute'"
            if postgres
            else "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || n || ' minutes')"
        )
        connection.execute(
            text(
                "INSERT INTO audit_events (at, actor, action, outcome, project_name, version, "  # noqa: S608
                "filename, detail) "
                f"SELECT {at}, 'user:u' || (n % 50), 'upload', "
                "CASE WHEN n % 10 = 0 THEN 'refused' ELSE 'ok' END, 'project-' || (n % 1000), "
                "'1.' || n, 'project_' || (n % 1000) || '-1.' || n || '-py3-none-any.whl', "
                """'{"reason": "File already exists"}' """
                f"FROM {audit_series}"
            ),
            {"audit": audit},
        )
        if not postgres:
            connection.execute(text("ANALYZE"))
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - start


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, worst) milliseconds of `repeats` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def run(engine: Engine, label: str, args: argparse.Namespace) -> None:
    migrate(engine)
    seconds = fill(engine, args.projects, args.days, args.audit)
    sessions = session_factory_for(engine)
    with sessions() as session:
        rows = session.scalar(text("SELECT count(*) FROM usage_project_days"))
    print(
        f"{label}: {rows:,} project-day rows, {args.audit:,} audit events, "
        f"filled in {seconds:.1f} s"
    )

    def in_session(function: Callable[[Session], object]) -> Callable[[], object]:
        def call() -> object:
            with sessions() as session:
                return function(session)

        return call

    charts = ProjectDownloads(sessions)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("dashboard (read_dashboard, 30 days)", in_session(lambda s: read_dashboard(s, 30, UNTIL))),
        ("dashboard over 365 days", in_session(lambda s: read_dashboard(s, 365, UNTIL))),
        ("downloads_by_project(30)", in_session(lambda s: downloads_by_project(s, 30, UNTIL))),
        ("project page chart (30 days)", lambda: charts.read(f"project-{args.projects // 2}")),
    ]
    with sessions() as session:
        top = read_dashboard(session, 30, UNTIL).top
    assert top[0][0] == "project-0", top[:3]
    for name, function in cases:
        median, worst = timed(function, args.repeats)
        print(f"| {label} | {name} | {median:.1f} | {worst:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--audit", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print("| database | query | median ms | worst ms |")
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(f"sqlite:///{Path(directory) / 'packyard.db'}")
        run(engine, "SQLite", args)
        engine.dispose()
    if args.postgres:
        from tests.postgres import running_postgres

        with running_postgres() as server, server.database() as url:
            engine = create_database_engine(url)
            run(engine, "PostgreSQL", args)
            engine.dispose()


if __name__ == "__main__":
    main()
