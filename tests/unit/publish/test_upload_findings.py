"""An upload's requirements checked against the advisories (SQLite and PostgreSQL):
a warning in the answer and the audit event, or a refusal with
`[advisories] refuse_uploads`, which stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from packyard.advisories.dependency_findings import release_findings
from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from packyard.db.audit import AuditEvent
from packyard.db.models import File
from packyard.errors import InvalidRequest
from packyard.publish.importer import import_directory
from packyard.publish.upload import UploadService
from packyard.settings import UploadSettings
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store
from tests.unit.advisories.conftest import SNAPSHOT
from tests.unit.publish.test_upload import Guard, upload, user

REQUIRES = ["django==3.2.0", "requests>=2.19", "jinja2>=2.10,<2.11"]


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    store = make_local_store(tmp_path / "data", database_url)
    for project in ("django", "jinja2"):
        import_entries(
            store.sessions, read_source(SNAPSHOT / project), actor="cli:root", source="t"
        )
    return store


def service(local: LocalStore, *, refuse: bool = False) -> UploadService:
    return UploadService(
        local.sessions,
        local.store,
        Guard(),
        UploadSettings(),
        refuse_affected_requirements=refuse,
    )


def audited(local: LocalStore) -> tuple[str, dict[str, object]]:
    with local.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "upload").order_by(AuditEvent.id.desc())
        ).first()
    assert event is not None
    return event.outcome, json.loads(event.detail)


@pytest.mark.anyio
async def test_an_upload_warns_of_requirements_that_admit_only_affected_versions(
    local: LocalStore, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "acme-app", "1.0", requires_dist=REQUIRES)

    result = await upload(service(local), user(local, "alice"), wheel)

    assert [finding.requirement for finding in result.findings] == [
        "django==3.2.0",
        "jinja2<2.11,>=2.10",
    ]
    first, *warnings = result.message.splitlines()
    assert first == f"Uploaded {wheel.name} to acme-app 1.0."
    assert warnings[0].startswith(
        "Warning: requirement 'django==3.2.0' admits only versions of django with known "
        "vulnerabilities (PYSEC-2021-109, "
    )
    assert warnings[1] == (
        "Warning: requirement 'jinja2<2.11,>=2.10' admits only versions of jinja2 with "
        "known vulnerabilities (PYSEC-2019-217, PYSEC-2021-66)."
    )
    outcome, detail = audited(local)
    assert outcome == "ok"
    findings = detail["dependency_findings"]
    assert isinstance(findings, list)
    assert [item["requirement"] for item in findings] == ["django==3.2.0", "jinja2<2.11,>=2.10"]
    with local.sessions() as session:
        stored = release_findings(session, "acme-app", "1.0")
    assert [item.finding for item in stored] == list(result.findings)


@pytest.mark.anyio
async def test_a_clean_upload_says_nothing_more(local: LocalStore, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "acme-app", "1.0", requires_dist=["django>=4.2"])
    result = await upload(service(local, refuse=True), user(local, "alice"), wheel)
    assert result.message == f"Uploaded {wheel.name} to acme-app 1.0."
    assert audited(local)[1]["dependency_findings"] == []


@pytest.mark.anyio
async def test_refuse_uploads_refuses_with_the_requirement_and_the_advisories(
    local: LocalStore, tmp_path: Path
) -> None:
    sdist = build_sdist(tmp_path, "acme-app", "1.0", requires_dist=REQUIRES)

    with pytest.raises(InvalidRequest) as refused:
        await upload(service(local, refuse=True), user(local, "alice"), sdist)

    assert refused.value.message == (
        "The requirement 'django==3.2.0' admits only versions of django with known "
        "vulnerabilities (PYSEC-2021-109, PYSEC-2021-439, PYSEC-2021-7, PYSEC-2021-8, "
        "PYSEC-2021-98 and 20 more) (and 1 more requirement): this index refuses such "
        "uploads. Require a fixed version of django, or ask an administrator to accept "
        "the risk."
    )
    outcome, detail = audited(local)
    assert outcome == "refused"
    assert detail["reason"] == refused.value.message
    with local.sessions() as session:
        assert session.scalar(select(func.count()).select_from(File)) == 0
    assert local.blob_files() == []


@pytest.mark.anyio
async def test_packyard_import_records_requirements_that_the_next_import_checks(
    local: LocalStore, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-app", "1.0", requires_dist=["jinja2==2.10", "click"])
    assert (await import_directory(dists, local.sessions, local.store)).ok
    with local.sessions() as session:
        assert release_findings(session, "acme-app", "1.0") == []  # not checked yet

    import_entries(local.sessions, read_source(SNAPSHOT / "jinja2"), actor="cli:root", source="t")

    with local.sessions() as session:
        (found,) = release_findings(session, "acme-app", "1.0")
        events = session.scalars(
            select(AuditEvent.project_name).where(AuditEvent.action == "dependency-finding")
        ).all()
    assert found.finding.advisory_ids == ("PYSEC-2019-217", "PYSEC-2021-66")
    assert events == ["acme-app"]
