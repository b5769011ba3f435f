"""Known vulnerabilities on the browser's pages: badges, lists, history marks, the
record's own page (rendered safely), `has:advisories`, dependency findings.

A real in-house store holds old versions of real names (jinja2 2.10, ...) and
real records of the PyPA snapshot are imported into it, beside a few written
here: hostile ones and a malicious-package one.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from packyard.advisories.importing import import_entries
from packyard.advisories.index import AdvisoryIndexReader
from packyard.advisories.sources import read_source
from packyard.app import create_app
from packyard.browser.catalog import LocalCatalog
from packyard.browser.service import Browser
from packyard.browser.vulnerabilities import Vulnerabilities
from packyard.db.advisories import AdvisoryException, DependencyFinding
from packyard.db.serial import bump_serial
from packyard.publish.importer import import_directory
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import MetadataRepository
from packyard.search.index import open_index
from packyard.search.sync import InHouseSync
from tests.builders import LocalStore, build_wheel, make_local_store
from tests.unit.advisories.conftest import SNAPSHOT

pytestmark = pytest.mark.anyio

REAL = ("jinja2/PYSEC-2019-217.yaml", "jinja2/PYSEC-2021-66.yaml", "jinja2/PYSEC-2014-8.yaml")
WITHDRAWN = "loguru/PYSEC-2022-15.yaml"
BEACON = "https://beacon.example/pixel.png"
HOSTILE_DETAILS = (
    "# Evil\n\n<script>window.xss=1</script>\n\n"
    '<img src=x onerror="window.xss=2">\n\n'
    "[click](javascript:window.xss=3) [admin](/admin/users) [ok](https://ok.example/fix)\n\n"
    f"![tracker]({BEACON})\n\n"
    '<a href="https://ok.example" onclick="window.xss=4">inline</a>\n'
)


def osv(advisory_id: str, name: str, **fields: object) -> dict[str, object]:
    """A record of `name` affecting every version (unless `affected` says otherwise)."""
    return {
        "id": advisory_id,
        "modified": "2024-05-01T00:00:00Z",
        "published": "2024-04-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
        **fields,
    }


HOSTILE = osv(
    "TEST-2024-1",
    "evil-pkg",
    summary="<b>bold</b> summary",
    details=HOSTILE_DETAILS,
    aliases=["CVE-2024-0001"],
    references=[
        {"type": "WEB", "url": "javascript:alert(1)"},
        {"type": "FIX", "url": "https://ok.example/commit"},
        {"type": "WEB", "url": "/admin/"},
    ],
)
HUGE = osv("TEST-2024-2", "evil-pkg", details="word " * 40_000 + "\n\nTHE-END-MARKER")
MALICIOUS = osv("MAL-2024-9", "typo-pkg", details="Steals credentials.")


@dataclass
class Site:
    client: httpx.AsyncClient
    store: LocalStore
    reader: AdvisoryIndexReader

    async def html(self, path: str) -> str:
        response = await self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.text

    def accept(self, advisory_id: str, project: str, reason: str) -> None:
        with self.store.sessions.begin() as session:
            session.add(
                AdvisoryException(
                    advisory_id=advisory_id,
                    project_name=project,
                    reason=reason,
                    accepted_by="user:root",
                    created_at=datetime.now(UTC),
                )
            )
            bump_serial(session)


def records_dir(root: Path) -> Path:
    """Copies of a few snapshot records and the records written here."""
    directory = root / "records"
    directory.mkdir()
    for origin in (*REAL, WITHDRAWN):
        shutil.copy(SNAPSHOT / origin, directory / origin.replace("/", "-"))
    for record in (HOSTILE, HUGE, MALICIOUS):
        (directory / f"{record['id']}.json").write_text(json.dumps(record))
    return directory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    dists = tmp_path / "dists"
    dists.mkdir()
    for version in ("2.10", "2.11.3", "3.1.4"):
        build_wheel(dists, "Jinja2", version, summary="A template engine")
    build_wheel(dists, "evil-pkg", "6.6.6")
    build_wheel(dists, "typo-pkg", "1.0")
    build_wheel(dists, "acme-core", "1.0", summary="Core")
    build_wheel(dists, "acme-app", "1.0")  # its findings are written by the test
    store = make_local_store(tmp_path / "store")
    assert anyio.run(import_directory, dists, store.sessions, store.store).ok
    report = import_entries(
        store.sessions, read_source(records_dir(tmp_path)), actor="tests", source="tests"
    )
    assert not report.skipped, report.skipped
    yield store
    store.engine.dispose()


@pytest.fixture
async def site(store: LocalStore) -> AsyncIterator[Site]:
    chain = MetadataRepository(LocalRepository(store.sessions, store.store), store.store)
    index = open_index("sqlite://")
    catalog = LocalCatalog(store.sessions)
    reader = AdvisoryIndexReader(store.sessions)
    browser = Browser(
        chain,
        index,
        catalog,
        InHouseSync(index, catalog, chain, interval=0),
        vulnerabilities=Vulnerabilities(reader, store.sessions),
    )
    transport = httpx.ASGITransport(app=create_app(chain, browser=browser))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        yield Site(client, store, reader)
    reader.close()
    await chain.aclose()


def section(html: str, element_id: str) -> str:
    """The HTML from the element `element_id` to the end of its section."""
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</section>", start)]


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


async def test_an_affected_release_shows_a_badge_and_its_advisories(site: Site) -> None:
    html = await site.html("/project/jinja2/2.10/")
    assert 'class="badge badge--vulnerable" href="#advisories">2 known vulnerabilities' in html
    assert "This release is affected by" in html
    listed = section(html, "advisories")
    affecting = listed[: listed.index("advisories-others")]
    assert affecting.count('class="advisory"') == 2
    assert 'href="/advisories/PYSEC-2019-217"' in affecting
    assert 'href="/advisories/PYSEC-2021-66"' in affecting
    assert "CVE-2019-10906" in affecting  # an alias
    assert "GHSA-462w-v97r-4m45" in affecting
    assert "&lt;2.10.1" in affecting  # the range, introduced at 0
    assert "<dt>Fixed in</dt><dd>2.10.1</dd>" in affecting
    # PYSEC records have no summary: the first words of the details stand in.
    assert "In Pallets Jinja before 2.10.1" in affecting
    # The project's other record, for older versions, behind a disclosure.
    assert "1 more for other versions of Jinja2" in listed
    assert 'href="/advisories/PYSEC-2014-8"' in listed[listed.index("advisories-others") :]


async def test_the_latest_release_unaffected_says_so_and_the_history_marks_versions(
    site: Site,
) -> None:
    html = await site.html("/project/jinja2/")
    assert "Jinja2 3.1.4" in html
    assert 'badge--vulnerable" href' not in html  # no badge in the banner
    assert "No known vulnerability affects Jinja2 3.1.4." in html
    assert "3 more for other versions of Jinja2" in html
    history = section(html, "history")
    items = re.findall(r"<li class=\"release[^\"]*\">(.*?)</li>", history, re.S)
    marks = {re.search(r">([0-9.]+)</a>", item)[1]: item for item in items}  # type: ignore[index]
    assert "2 vulnerabilities" in marks["2.10"]
    assert "vulnerabilit" not in marks["2.11.3"]
    assert "vulnerabilit" not in marks["3.1.4"]


async def test_a_project_without_advisories_shows_nothing_of_them(site: Site) -> None:
    html = await site.html("/project/acme-core/")
    assert 'id="advisories"' not in html
    assert "vulnerabilit" not in html


async def test_a_malicious_package_gets_the_stronger_badge(site: Site) -> None:
    html = await site.html("/project/typo-pkg/")
    assert 'class="badge badge--malicious" href="#advisories">malicious package' in html
    assert "is a known malicious package" in html
    assert 'href="/advisories/MAL-2024-9"' in html
    assert 'badge--malicious">malicious</span>' in section(html, "history")
    page = await site.html("/advisories/MAL-2024-9")
    assert "reports a malicious package" in page


async def test_an_accepted_risk_is_marked(site: Site) -> None:
    site.accept("PYSEC-2019-217", "jinja2", "Sandbox not used <here>")
    html = await site.html("/project/jinja2/2.10/")
    assert "PYSEC-2019-217</a> (accepted risk).</p>" in html
    entries = section(html, "advisories").split('<li class="advisory')
    accepted = next(entry for entry in entries if "PYSEC-2019-217" in entry)
    assert "accepted risk" in accepted
    assert "Sandbox not used &lt;here&gt;" in accepted
    other = next(entry for entry in entries if "PYSEC-2021-66" in entry)
    assert "accepted" not in other
    page = await site.html("/advisories/PYSEC-2019-217")
    assert "accepted risk" in section(page, "affected")


async def test_the_record_page(site: Site) -> None:
    html = await site.html("/advisories/PYSEC-2021-66")
    assert '<h1 class="banner__title">PYSEC-2021-66</h1>' in html
    assert "This affects the package jinja2 from 0.0.0 and before 2.11.3" in html  # details
    assert 'href="/project/jinja2/"' in section(html, "affected")
    assert "<dt>Fixed in</dt><dd>2.11.3</dd>" in html
    assert "Published: <time" in html
    assert "Modified: <time" in html
    references = section(html, "references")
    assert (
        '<a href="https://github.com/pallets/jinja/pull/1343" rel="noopener nofollow noreferrer">'
        in references
    )
    assert "withdrawn" not in html
    assert (
        "script-src 'self'"
        in (await site.client.get("/advisories/PYSEC-2021-66")).headers["content-security-policy"]
    )


async def test_a_withdrawn_record_keeps_its_page_marked_withdrawn(site: Site) -> None:
    html = await site.html("/advisories/PYSEC-2022-15")
    assert 'badge--withdrawn">withdrawn' in html
    assert "This advisory was withdrawn on 2022-02-22" in html
    assert "This CVE has been rejected" in html
    # Not in force: no project page lists it.
    assert "PYSEC-2022-15" not in await site.html("/project/acme-core/")


@pytest.mark.parametrize("advisory_id", ["PYSEC-0000-0", "nothing", "a" * 300, "%3Cb%3E"])
async def test_an_unknown_record_is_a_404_page(site: Site, advisory_id: str) -> None:
    response = await site.client.get(f"/advisories/{advisory_id}")
    assert response.status_code == 404
    assert "There is no advisory" in response.text
    assert "<b>" not in response.text
    assert (await site.client.get("/advisories/..%2f..%2fetc")).status_code == 404


async def test_a_hostile_record_is_shown_not_run(site: Site) -> None:
    html = await site.html("/advisories/TEST-2024-1")
    details = section(html, "details")
    assert "<script" not in details
    assert "onerror" not in details
    assert "onclick" not in details
    assert BEACON not in html  # no image, not even as a link
    assert "<img" not in details
    links = hrefs(details)
    assert "https://ok.example/fix" in links
    assert all(link.startswith(("https://", "#")) for link in links), links
    assert all('rel="noopener nofollow noreferrer"' in a for a in re.findall(r"<a [^>]*>", details))
    assert "&lt;b&gt;bold&lt;/b&gt; summary" in html  # the summary is text
    references = section(html, "references")
    assert hrefs(references) == ["https://ok.example/commit"]
    assert '<span class="unsafe-url">javascript:alert(1)</span>' in references
    project = await site.html("/project/evil-pkg/")
    assert "&lt;b&gt;bold&lt;/b&gt; summary" in project
    assert "<b>bold</b>" not in project


async def test_huge_details_are_cut(site: Site) -> None:
    html = await site.html("/advisories/TEST-2024-2")
    assert "THE-END-MARKER" not in html
    assert "longer than this page shows" in html
    assert 'href="/osv/v1/vulns/TEST-2024-2"' in html
    assert len(html) < 150_000


async def test_has_advisories_keeps_projects_that_records_name(site: Site) -> None:
    html = await site.html("/search?q=has%3Aadvisories")
    names = re.findall(r'href="/project/([^/]+)/"', html)
    assert sorted(names) == ["evil-pkg", "jinja2", "typo-pkg"]
    html = await site.html("/search?q=template+has%3Aadvisories")
    assert re.findall(r'href="/project/([^/]+)/"', html) == ["jinja2"]
    assert (
        re.findall(r'href="/project/([^/]+)/"', await site.html("/search?q=core+has:advisories"))
        == []
    )
    assert "<code>has:advisories</code>" in await site.html("/")  # the home page's help
    bad = await site.client.get("/search?q=has%3Awheels")
    assert bad.status_code == 400
    assert "has: is one of advisories" in bad.text


async def test_dependency_findings_are_shown_on_the_release_page(site: Site) -> None:
    assert 'id="dependency-findings"' not in await site.html("/project/acme-app/")
    with site.store.sessions.begin() as session:
        for requirement, dependency, ids in (
            ("jinja2==2.10", "jinja2", ["PYSEC-2019-217", "PYSEC-2021-66"]),
            ("acme-core>=1", "acme-core", []),  # every requirement has a row
        ):
            session.add(
                DependencyFinding(
                    project_name="acme-app",
                    version="1.0",
                    requirement=requirement,
                    dependency=dependency,
                    advisory_ids=json.dumps(ids),
                    found_at=datetime.now(UTC),
                )
            )
    html = await site.html("/project/acme-app/")
    findings = section(html, "dependency-findings")
    assert "Requires an affected version of" in findings
    assert 'href="/project/jinja2/"' in findings
    assert "<code>jinja2==2.10</code>" in findings
    assert 'href="/advisories/PYSEC-2019-217"' in findings
    assert 'href="/advisories/PYSEC-2021-66"' in findings
    assert "acme-core" not in findings
