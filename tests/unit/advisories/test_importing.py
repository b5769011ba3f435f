"""`import_entries` on SQLite and PostgreSQL: idempotent, newest `modified` wins,
withdrawn kept but not applied, duplicates reported, and all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.importing import CHUNK, IMPORT_ACTION, ImportReport, import_entries
from packyard.advisories.index import AdvisoryIndexReader
from packyard.advisories.records import read_record
from packyard.advisories.sources import Entry, SourceUnreadable, read_source
from packyard.db.advisories import Advisory, AdvisoryImport, AdvisoryPackage
from packyard.db.audit import AuditEvent
from packyard.db.freshness import PollingSerialWatcher
from packyard.db.serial import read_serial
from tests.unit.advisories.conftest import SNAPSHOT, raw

ACTOR = "cli:root"
WITHDRAWN = "PYSEC-2022-43059"  # aiohttp's, withdrawn in the snapshot


def snapshot_projects(*names: str) -> Iterator[Entry]:
    for name in names:
        yield from read_source(SNAPSHOT / name)


def run(sessions: sessionmaker[Session], entries: Iterator[Entry] | list[Entry]) -> ImportReport:
    return import_entries(sessions, entries, actor=ACTOR, source="test")


REQUESTS = raw("requests/PYSEC-2018-28.yaml")


def entry(origin: str, **changes: Any) -> Entry:
    data = {**REQUESTS, **changes}
    return Entry(origin, record=read_record(data))


def stored(sessions: sessionmaker[Session]) -> dict[str, tuple[datetime, str | None, bool]]:
    with sessions() as session:
        rows = session.execute(
            select(Advisory.id, Advisory.modified, Advisory.summary, Advisory.withdrawn)
        )
        return {
            id_: (modified, summary, withdrawn is not None)
            for id_, modified, summary, withdrawn in rows
        }


def count(sessions: sessionmaker[Session], table: type[Any]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def serial(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return read_serial(session)


def test_a_second_import_of_the_same_records_changes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    first = run(sessions, snapshot_projects("requests", "aiohttp", "django"))
    assert len(first.added) == first.summary()["added"] > 100
    assert WITHDRAWN in first.added
    assert first.withdrawn == [WITHDRAWN]  # withdrawn on arrival: said once
    assert (first.changed, first.unchanged, first.skipped) == ([], 0, [])
    rows = stored(sessions)
    second = run(sessions, snapshot_projects("requests", "aiohttp", "django"))
    assert second.summary() == {
        "added": 0,
        "changed": 0,
        "withdrawn": 0,
        "unchanged": len(first.added),
        "skipped": 0,
    }
    assert stored(sessions) == rows
    assert second.generation == first.generation + 1


def test_a_newer_modified_replaces_an_older_one_does_not(sessions: sessionmaker[Session]) -> None:
    run(sessions, [entry("requests/PYSEC-2018-28.yaml")])
    newer = entry(
        "osv/PYSEC-2018-28.json",
        modified="2025-01-01T00:00:00Z",
        summary="rewritten",
        affected=[
            {"package": {"ecosystem": "PyPI", "name": "Requests"}, "versions": ["2.19.0"]},
            {"package": {"ecosystem": "PyPI", "name": "requests-toolbelt"}, "versions": ["0.1"]},
        ],
    )
    report = run(sessions, [newer])
    assert (report.added, report.changed) == ([], ["PYSEC-2018-28"])
    assert stored(sessions)["PYSEC-2018-28"][:2] == (datetime(2025, 1, 1, tzinfo=UTC), "rewritten")
    with sessions() as session:
        names = session.scalars(select(AdvisoryPackage.name).order_by(AdvisoryPackage.name)).all()
        record = json.loads(session.scalars(select(Advisory.record)).one())
    assert names == ["requests", "requests-toolbelt"]
    assert record["summary"] == "rewritten"
    older = entry("old/PYSEC-2018-28.json", modified="2019-01-01T00:00:00Z", summary="stale")
    report = run(sessions, [older])
    assert (report.changed, report.unchanged) == ([], 1)
    assert stored(sessions)["PYSEC-2018-28"][1] == "rewritten"


@pytest.mark.anyio
async def test_a_withdrawn_record_is_kept_and_no_longer_applies(
    sessions: sessionmaker[Session],
) -> None:
    engine: Engine = sessions.kw["bind"]
    reader = AdvisoryIndexReader(sessions, watcher=PollingSerialWatcher(engine, interval=0))
    run(sessions, [entry("requests/PYSEC-2018-28.yaml")])
    before = await reader.current()
    assert [r.id for r in before.affecting("requests", "2.19.0")] == ["PYSEC-2018-28"]
    report = run(
        sessions,
        [entry("x.json", modified="2025-01-01T00:00:00Z", withdrawn="2025-01-01T00:00:00Z")],
    )
    assert (report.changed, report.withdrawn) == (["PYSEC-2018-28"], ["PYSEC-2018-28"])
    after = await reader.current()
    assert after.generation > before.generation
    assert after.affecting("requests", "2.19.0") == ()
    assert after.for_project("requests") == ()
    assert stored(sessions)["PYSEC-2018-28"][2]  # still stored, marked withdrawn
    # A newer copy still withdrawn is a change, not a second withdrawal.
    again = run(
        sessions,
        [entry("y.json", modified="2025-02-01T00:00:00Z", withdrawn="2025-01-01T00:00:00Z")],
    )
    assert (again.changed, again.withdrawn) == (["PYSEC-2018-28"], [])


def test_a_duplicate_id_is_reported_with_both_file_names(sessions: sessionmaker[Session]) -> None:
    report = run(
        sessions,
        [entry("a/PYSEC-2018-28.yaml"), entry("b/PYSEC-2018-28.json", summary="the second")],
    )
    assert report.added == ["PYSEC-2018-28"]
    assert report.skipped == [
        ("b/PYSEC-2018-28.json", "duplicate id PYSEC-2018-28 (also in a/PYSEC-2018-28.yaml)")
    ]
    assert stored(sessions)["PYSEC-2018-28"][1] != "the second"


def test_unreadable_files_are_reported_and_the_rest_imported(
    sessions: sessionmaker[Session],
) -> None:
    report = run(
        sessions,
        [Entry("bad.json", problem="not valid JSON: x"), *snapshot_projects("binderhub")],
    )
    assert report.skipped[0] == ("bad.json", "not valid JSON: x")
    assert report.skipped[1][0] == "PYSEC-2021-371.yaml"
    assert len(report.added) == len(list(read_source(SNAPSHOT / "binderhub"))) - 1
    with sessions() as session:
        logged = session.scalars(select(AdvisoryImport)).one()
    assert (logged.added, logged.skipped, logged.actor, logged.source) == (
        len(report.added),
        2,
        ACTOR,
        "test",
    )


def test_an_import_bumps_the_serial_and_is_audited(sessions: sessionmaker[Session]) -> None:
    before = serial(sessions)
    report = run(sessions, snapshot_projects("requests"))
    assert serial(sessions) == before + 1
    with sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == IMPORT_ACTION)).one()
    assert event.actor == ACTOR
    assert event.outcome == "ok"
    detail = json.loads(event.detail)
    assert detail == {"source": "test", "counts": report.summary()}


def refuse_import_logs(engine: Engine) -> None:
    """Make the database refuse the import's last insert (its `advisory_imports` row)."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON advisory_imports "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
            return
        connection.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON advisory_imports "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


def test_a_failure_at_the_end_leaves_nothing_of_the_import(sessions: sessionmaker[Session]) -> None:
    run(sessions, [entry("requests/PYSEC-2018-28.yaml")])
    before = (stored(sessions), serial(sessions), count(sessions, AuditEvent))
    refuse_import_logs(sessions.kw["bind"])
    newer = entry("x.json", modified="2025-01-01T00:00:00Z", summary="rewritten")
    with pytest.raises(Exception, match="refused by the test"):
        run(sessions, [newer, *snapshot_projects("django", "aiohttp")])
    assert (stored(sessions), serial(sessions), count(sessions, AuditEvent)) == before
    assert count(sessions, AdvisoryPackage) == 1


def test_a_source_that_fails_midway_leaves_nothing(sessions: sessionmaker[Session]) -> None:
    def failing() -> Iterator[Entry]:
        # More than one batch: the first is written in the transaction before the failure.
        for number in range(CHUNK + 10):
            yield entry(f"{number}.json", id=f"PYSEC-2099-{number}")
        raise SourceUnreadable("all.zip inflates to more than 4294967296 bytes")

    with pytest.raises(SourceUnreadable):
        run(sessions, failing())
    assert stored(sessions) == {}
    assert count(sessions, AdvisoryImport) == 0
