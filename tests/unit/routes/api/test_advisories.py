"""`/api/v1/projects/…/advisories`, `…/releases/{version}/advisories` and
`/api/v1/advisories/{id}`: known vulnerabilities over the admin API, read-only,
administrators only, on SQLite and PostgreSQL.

Real records of the PyPA snapshot (jinja2's, a withdrawn one of loguru) and one
written here for the in-house project acme-core (releases 1.0 and 1.1).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from packyard.auth.authenticate import Authenticators
from packyard.db.advisories import AdvisoryException, AdvisoryPolicy
from packyard.routes.api import ApiServices, api_app
from packyard.settings import AdvisorySettings, AuthSettings, UpstreamSettings
from tests.unit.advisories.conftest import SNAPSHOT
from tests.unit.routes.api.conftest import Site, _seed

pytestmark = pytest.mark.anyio

REAL = ("jinja2/PYSEC-2019-217.yaml", "jinja2/PYSEC-2021-66.yaml", "loguru/PYSEC-2022-15.yaml")
IN_HOUSE = {
    "id": "TEST-2024-7",
    "modified": "2024-05-01T00:00:00Z",
    "published": "2024-05-01T00:00:00Z",
    "summary": "acme-core leaks its keys",
    "aliases": ["CVE-2024-9999"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Acme_Core"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}],
        }
    ],
}
UPSTREAMS = (
    UpstreamSettings(url="https://pypi.test/simple/", name="pypi", advisories_policy="yank"),
    UpstreamSettings(url="https://mirror.test/simple/", name="mirror"),
)
SETTINGS = AdvisorySettings(policy="warn", local_policy="deny")


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    local, tokens = await _seed(tmp_path, database_url)
    records = tmp_path / "records"
    records.mkdir()
    for origin in REAL:
        shutil.copy(SNAPSHOT / origin, records / origin.replace("/", "-"))
    (records / "in-house.json").write_text(json.dumps(IN_HOUSE))
    report = import_entries(local.sessions, read_source(records), actor="tests", source="tests")
    assert not report.skipped
    async with httpx.AsyncClient() as unused_oidc_client:
        authenticators = Authenticators(local.sessions, AuthSettings(), unused_oidc_client)
        services = ApiServices(
            local.sessions, authenticators, local.store, UPSTREAMS, advisories=SETTINGS
        )
        app = Starlette(routes=[Mount("/api/v1", app=api_app(services))])
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
        base = "http://packyard.test/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield Site(client, local, tokens)
    local.engine.dispose()


async def get(site: Site, path: str, user: str = "root") -> httpx.Response:
    return await site.client.get(path, headers=site.auth(user))


async def test_a_public_projects_advisories(site: Site) -> None:
    response = await get(site, "/projects/Jinja2/advisories")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["project"] == "jinja2"
    assert body["in_house"] is False
    assert [a["id"] for a in body["advisories"]] == ["PYSEC-2021-66", "PYSEC-2019-217"]
    first = body["advisories"][1]
    assert first["aliases"] == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]
    assert first["affected"] == ["<2.10.1"]
    assert first["fixed"] == ["2.10.1"]
    assert first["malicious"] is False
    assert first["accepted"] is None
    assert first["withdrawn"] is None
    assert first["published"].startswith("2019-04-07")


async def test_withdrawn_records_only_when_asked(site: Site) -> None:
    plain = await get(site, "/projects/loguru/advisories")
    assert plain.status_code == 200  # a record names it: a project packyard knows of
    assert plain.json()["advisories"] == []
    listed = (await get(site, "/projects/loguru/advisories?withdrawn=true")).json()["advisories"]
    assert [a["id"] for a in listed] == ["PYSEC-2022-15"]
    assert listed[0]["withdrawn"].startswith("2022-02-22")
    assert listed[0]["affected"] == ["no version"]


async def test_an_in_house_release_with_its_policy_and_accepted_risks(site: Site) -> None:
    affected = (await get(site, "/projects/acme-core/releases/1.0/advisories")).json()
    assert affected["in_house"] is True
    assert affected["version"] == "1.0"
    assert [a["id"] for a in affected["advisories"]] == ["TEST-2024-7"]
    assert affected["advisories"][0]["affected"] == ["<1.1"]
    assert affected["policies"] == [{"source": "local", "policy": "deny"}]
    fixed = (await get(site, "/projects/acme-core/releases/1.1.0/advisories")).json()
    assert fixed["advisories"] == []

    with site.local.sessions.begin() as session:
        session.add(
            AdvisoryPolicy(source="local", policy="hide", set_by="user:root", set_at=_now())
        )
        for project, reason in (("*", "everywhere"), ("acme-core", "keys rotated")):
            session.add(
                AdvisoryException(
                    advisory_id="TEST-2024-7",
                    project_name=project,
                    reason=reason,
                    accepted_by="user:root",
                    created_at=_now(),
                )
            )
    again = (await get(site, "/projects/acme-core/releases/1.0/advisories")).json()
    assert again["policies"] == [{"source": "local", "policy": "hide"}]
    accepted = again["advisories"][0]["accepted"]
    assert accepted["project"] == "acme-core"  # the project's own wins over `*`
    assert accepted["reason"] == "keys rotated"
    assert accepted["accepted_by"] == "user:root"


async def test_a_public_release_names_every_upstreams_policy(site: Site) -> None:
    body = (await get(site, "/projects/jinja2/releases/2.10/advisories")).json()
    assert [a["id"] for a in body["advisories"]] == ["PYSEC-2021-66", "PYSEC-2019-217"]
    assert body["policies"] == [
        {"source": "pypi", "policy": "yank"},
        {"source": "mirror", "policy": "warn"},
    ]
    newer = (await get(site, "/projects/jinja2/releases/2.11.3/advisories")).json()
    assert newer["advisories"] == []


async def test_one_record_by_id(site: Site) -> None:
    response = await get(site, "/advisories/PYSEC-2019-217")
    assert response.status_code == 200
    body = response.json()
    assert body["record"]["id"] == "PYSEC-2019-217"
    assert body["record"]["details"].startswith("In Pallets Jinja before 2.10.1")
    assert body["projects"] == [
        {"name": "jinja2", "affected": ["<2.10.1"], "fixed": ["2.10.1"], "accepted": None}
    ]
    withdrawn = (await get(site, "/advisories/PYSEC-2022-15")).json()
    assert withdrawn["withdrawn"].startswith("2022-02-22")


MISTAKES = (
    ("/projects/nowhere-at-all/advisories", 404, "No in-house project and no advisory"),
    ("/projects/nowhere-at-all/releases/1.0/advisories", 404, "No in-house project"),
    ("/projects/-bad-/advisories", 400, "is invalid"),
    ("/projects/jinja2/releases/not%20a%20version/advisories", 400, "not a valid version"),
    ("/advisories/PYSEC-0000-0", 404, "There is no advisory 'PYSEC-0000-0'"),
)
READS = (
    "/projects/jinja2/advisories",
    "/projects/acme-core/releases/1.0/advisories",
    "/advisories/PYSEC-2019-217",
)


async def test_mistakes_are_answered_with_a_message(site: Site) -> None:
    for path, status, message in MISTAKES:
        response = await get(site, path)
        assert response.status_code == status, path
        assert message in response.json()["detail"], path


async def test_administrators_only(site: Site) -> None:
    for path in READS:
        anonymous = await site.client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"] == 'Basic realm="packyard"'
        assert (await get(site, path, "bob")).status_code == 403, path
        # alice owns acme-core, and is still no administrator.
        assert (await get(site, path, "alice")).status_code == 403, path
        assert (await get(site, path, "root")).status_code == 200, path


def _now() -> datetime:
    return datetime.now(UTC)


async def test_the_api_reference_lists_them(site: Site) -> None:
    page = (await site.client.get("/docs")).text
    for path in (
        "/api/v1/projects/{project}/advisories",
        "/api/v1/projects/{project}/releases/{version}/advisories",
        "/api/v1/advisories/{advisory_id}",
    ):
        assert f"<code>{path}</code>" in page
    assert "known vulnerabilities" in page
