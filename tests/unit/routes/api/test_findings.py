"""`GET /projects/{project}/releases/{version}/findings`: a release's requirements
that admit only affected versions, for anyone signed in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from packaging.requirements import Requirement

from packyard.advisories.dependency_findings import check_release, record_release
from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from tests.unit.advisories.conftest import SNAPSHOT
from tests.unit.routes.api.conftest import Site

NOW = datetime(2024, 11, 1, tzinfo=UTC)


def require(site: Site, version: str, *texts: str) -> None:
    """Record the requirements of a file of acme-core `version`, as an upload does."""
    requirements = [Requirement(text) for text in texts]
    with site.local.sessions.begin() as session:
        findings = check_release(session, requirements)
        record_release(session, "acme-core", version, requirements, findings, NOW)


@pytest.mark.anyio
async def test_a_release_s_findings_are_listed(site: Site) -> None:
    import_entries(
        site.local.sessions, read_source(SNAPSHOT / "requests"), actor="cli:root", source="t"
    )
    require(site, "1.0", "requests==2.19.0", "urllib3>=1.21")
    require(site, "1.1", "requests>=2.19")

    answer = await site.client.get(
        "/projects/Acme_Core/releases/1.0.0/findings", headers=site.auth("bob")
    )

    assert answer.status_code == 200
    assert answer.json() == {
        "project": "acme-core",
        "version": "1.0",
        "findings": [
            {
                "requirement": "requests==2.19.0",
                "dependency": "requests",
                "advisory_ids": ["PYSEC-2018-28", "PYSEC-2023-74"],
                "found_at": "2024-11-01T00:00:00Z",
            }
        ],
    }
    clean = await site.client.get(
        "/projects/acme-core/releases/1.1/findings", headers=site.auth("alice-scoped")
    )
    assert clean.status_code == 200
    assert clean.json()["findings"] == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/projects/acme-core/releases/9.9/findings", 404),
        ("/projects/no-such-project/releases/1.0/findings", 404),
        ("/projects/acme-core/releases/not-a-version/findings", 400),
        ("/projects/-bad-/releases/1.0/findings", 400),
    ],
)
async def test_what_is_not_a_release_is_refused_with_a_message(
    site: Site, path: str, status: int
) -> None:
    answer = await site.client.get(path, headers=site.auth("bob"))
    assert answer.status_code == status
    assert answer.json()["detail"]


@pytest.mark.anyio
async def test_findings_need_credentials(site: Site) -> None:
    answer = await site.client.get("/projects/acme-core/releases/1.0/findings")
    assert answer.status_code == 401
