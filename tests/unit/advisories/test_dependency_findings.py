"""Findings on in-house releases' requirements, stored (SQLite and PostgreSQL):
recorded at upload, re-checked by every import with one audit event per new
finding, and none for an import that changes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from packaging.requirements import Requirement
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.dependency_findings import (
    FINDING_ACTION,
    check_release,
    record_release,
    release_findings,
)
from packyard.advisories.importing import import_entries
from packyard.advisories.records import read_record
from packyard.advisories.sources import Entry, read_source
from packyard.db.advisories import AdvisoryException, DependencyFinding
from packyard.db.audit import AuditEvent
from packyard.db.models import File, Project
from tests.unit.advisories.conftest import SNAPSHOT

NOW = datetime(2024, 11, 1, tzinfo=UTC)
FILE_NUMBERS = count()
REQUIRES = ["django==3.2.0", "requests>=2.19", 'Jinja2==2.10; extra == "docs"']


def snapshot(*projects: str) -> Iterator[Entry]:
    for project in projects:
        yield from read_source(SNAPSHOT / project)


def imported(sessions: sessionmaker[Session], entries: Iterable[Entry]) -> None:
    import_entries(sessions, entries, actor="cli:root", source="test")


def synthetic(advisory_id: str, name: str, modified: str, **fields: Any) -> Entry:
    data = {
        "id": advisory_id,
        "modified": modified,
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": ["1.0", "1.1"]}],
        **fields,
    }
    return Entry(f"{advisory_id}.json", record=read_record(data))


def add_file(session: Session, project: str, version: str, filename: str | None = None) -> None:
    """A stored file of an in-house release (its bytes do not matter here)."""
    row = session.scalar(select(Project).where(Project.name == project))
    if row is None:
        row = Project(name=project, display_name=project, created_at=NOW)
        session.add(row)
    name = filename or f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    session.add(
        File(
            project=row,
            filename=name,
            version=version,
            packagetype="bdist_wheel",
            python_version="py3",
            size=1,
            sha256=name.ljust(64, "0")[:64],
            blake2_256=name.ljust(64, "1")[:64],
            md5="0" * 32,
            upload_time=NOW,
            blob_key=name,
        )
    )


def upload(
    sessions: sessionmaker[Session], project: str, version: str, requires: Iterable[str]
) -> list[str]:
    """What an upload does: check, then store the file and its requirements' rows."""
    requirements = [Requirement(text) for text in requires]
    with sessions.begin() as session:
        findings = check_release(session, requirements)
        add_file(session, project, version, f"{project}-{version}-{next(FILE_NUMBERS)}.whl")
        record_release(session, project, version, requirements, findings, NOW)
    return [finding.requirement for finding in findings]


def shown(sessions: sessionmaker[Session], project: str, version: str) -> dict[str, int]:
    """The release's findings: requirement -> how many advisories."""
    with sessions() as session:
        return {
            item.finding.requirement: len(item.finding.advisory_ids)
            for item in release_findings(session, project, version)
        }


def events(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == FINDING_ACTION).order_by(AuditEvent.id)
        )
        return [
            {"project": r.project_name, "version": r.version, **json.loads(r.detail)} for r in rows
        ]


def test_an_import_flags_what_it_makes_affected_once(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    assert upload(sessions, "acme-app", "1.0", REQUIRES) == []  # no advisories yet
    assert shown(sessions, "acme-app", "1.0") == {}

    with caplog.at_level(logging.INFO, logger="packyard.audit"):
        imported(sessions, snapshot("django", "requests"))

    assert shown(sessions, "acme-app", "1.0") == {"django==3.2.0": 25}
    (event,) = events(sessions)
    assert event["project"] == "acme-app"
    assert event["version"] == "1.0"
    assert event["requirement"] == "django==3.2.0"
    assert event["dependency"] == "django"
    assert len(event["advisory_ids"]) == 25
    assert event["new_advisory_ids"] == event["advisory_ids"]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "packyard.audit"]
    assert [line["requirement"] for line in lines if line["action"] == FINDING_ACTION] == [
        "django==3.2.0"
    ]

    imported(sessions, snapshot("django", "requests"))  # the same again: nothing new
    assert len(events(sessions)) == 1

    imported(sessions, snapshot("jinja2"))  # the extra's requirement counts too
    assert shown(sessions, "acme-app", "1.0") == {
        'Jinja2==2.10; extra == "docs"': 2,
        "django==3.2.0": 25,
    }
    assert [event["dependency"] for event in events(sessions)] == ["django", "jinja2"]


def test_an_upload_is_checked_against_what_is_stored(sessions: sessionmaker[Session]) -> None:
    imported(sessions, snapshot("requests"))
    assert upload(sessions, "acme-app", "1.0", ["requests==2.19.0", "requests-toolbelt"]) == [
        "requests==2.19.0"
    ]
    assert upload(sessions, "acme-app", "2.0", ["requests>=2.19"]) == []
    assert shown(sessions, "acme-app", "1.0") == {"requests==2.19.0": 2}
    assert shown(sessions, "acme-app", "2.0") == {}
    # Not an import: no event. The upload's own audit event carries its findings.
    assert events(sessions) == []


def test_a_release_keeps_the_requirements_of_each_of_its_files(
    sessions: sessionmaker[Session],
) -> None:
    upload(sessions, "acme-app", "1.0", ["requests>=2.0"])
    upload(sessions, "acme-app", "1.0", ['requests==2.19.0; sys_platform == "win32"'])
    imported(sessions, snapshot("requests"))
    assert shown(sessions, "acme-app", "1.0") == {'requests==2.19.0; sys_platform == "win32"': 2}
    with sessions() as session:
        stored = session.scalars(select(DependencyFinding.requirement)).all()
    assert sorted(stored) == ['requests==2.19.0; sys_platform == "win32"', "requests>=2.0"]


def test_withdrawn_and_accepted_records_clear_a_finding_without_an_event(
    sessions: sessionmaker[Session],
) -> None:
    upload(sessions, "acme-app", "1.0", ["demo-lib>=1.0,<1.2", "jinja2==2.10"])
    imported(sessions, [synthetic("PYSEC-0000-1", "demo-lib", "2024-01-01T00:00:00Z")])
    imported(sessions, snapshot("jinja2"))
    assert shown(sessions, "acme-app", "1.0") == {"demo-lib<1.2,>=1.0": 1, "jinja2==2.10": 2}
    assert len(events(sessions)) == 2

    withdrawn = {"withdrawn": "2024-02-01T00:00:00Z"}
    imported(sessions, [synthetic("PYSEC-0000-1", "demo-lib", "2024-02-01T00:00:00Z", **withdrawn)])
    assert shown(sessions, "acme-app", "1.0") == {"jinja2==2.10": 2}

    with sessions.begin() as session:
        for advisory_id in ("PYSEC-2019-217", "PYSEC-2021-66"):
            session.add(
                AdvisoryException(
                    advisory_id=advisory_id,
                    project_name="jinja2",
                    reason="sandbox unused",
                    accepted_by="admin",
                    created_at=NOW,
                )
            )
    imported(sessions, snapshot("jinja2"))
    assert shown(sessions, "acme-app", "1.0") == {}
    assert len(events(sessions)) == 2


def test_versions_stored_in_packyard_are_candidates(sessions: sessionmaker[Session]) -> None:
    # demo-lib 1.0 and 1.1 are listed as affected; packyard stores demo-lib 1.0.1.
    upload(sessions, "acme-app", "1.0", ["demo-lib>=1.0,<1.2"])
    upload(sessions, "demo-lib", "1.0.1", [])
    imported(sessions, [synthetic("PYSEC-0000-1", "demo-lib", "2024-01-01T00:00:00Z")])
    assert shown(sessions, "acme-app", "1.0") == {}
    assert events(sessions) == []


def test_a_release_without_files_loses_its_rows(sessions: sessionmaker[Session]) -> None:
    upload(sessions, "acme-app", "1.0", ["requests==2.19.0"])
    upload(sessions, "acme-app", "2.0", ["requests==2.19.0"])
    with sessions.begin() as session:
        session.execute(delete(File).where(File.version == "1.0"))
    imported(sessions, snapshot("requests"))
    with sessions() as session:
        versions = session.scalars(select(DependencyFinding.version)).all()
    assert versions == ["2.0"]
    assert [event["version"] for event in events(sessions)] == ["2.0"]
