"""Known vulnerabilities in a real browser: Debian's Chromium driven by Playwright.

Two real `packyard serve` processes: an upstream that publishes jinja2 2.10,
2.11.3 and 3.1.4 (wheels built here), and the site under test, which proxies
it and has imported jinja2's real records from the PyPA snapshot with
`packyard advisories import`; then `acme-web`, which requires `jinja2==2.10`,
is uploaded to it with twine. The default policy (`warn`) serves
everything: the pages show what is known.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from packyard.auth.identity import Identity
from packyard.publish import accounts
from tests.advisory_data import SNAPSHOT
from tests.builders import build_wheel, make_local_store
from tests.e2e.chromium import TIMEOUT_MS, screenshot
from tests.e2e.clients import run
from tests.e2e.servers import BIN, PackyardProcess, packyard

pytestmark = pytest.mark.e2e

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


@dataclass(frozen=True)
class Sites:
    site: PackyardProcess
    shots: Path


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("browser-advisories")
    public, local, records = root / "public-dists", root / "local-dists", root / "vulns"
    public.mkdir()
    local.mkdir()
    for version in ("2.10", "2.11.3", "3.1.4"):
        build_wheel(public, "Jinja2", version, summary="A template engine")
    wheel = build_wheel(local, "acme-web", "1.0", requires_dist=("jinja2==2.10",))
    # Copies of the real records: the import reads them as they are.
    shutil.copytree(SNAPSHOT / "jinja2", records / "jinja2")
    upstream = PackyardProcess(root / "upstream-data")
    site = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    # The stores, and alice's token, made in this process: each command would
    # cost an interpreter's start.
    make_local_store(upstream.data_dir).engine.dispose()
    store = make_local_store(site.data_dir)
    with store.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        session.flush()
        token, _ = accounts.create_token(session, "alice", actor=OPERATOR)
    store.engine.dispose()
    result = upstream.import_dir(public)
    assert result.returncode == 0, result.stdout + result.stderr
    done = packyard("advisories", "import", str(records), "--data-dir", str(site.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    with upstream, site:
        twine = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        credentials = ["-u", "__token__", "-p", token]
        upload = run([*twine, "--repository-url", site.url + "/legacy/", *credentials, str(wheel)])
        assert upload.returncode == 0, upload.stdout + upload.stderr
        yield Sites(site, root / "screenshots")


def test_badges_marks_and_the_record_page(page: Page, sites: Sites) -> None:
    page.goto(sites.site.url + "/project/jinja2/")
    expect(page.locator(".banner__title")).to_have_text(re.compile(r"jinja2 3\.1\.4", re.I))
    expect(page.locator(".banner .badge--vulnerable")).to_have_count(0)
    expect(page.locator("#advisories")).to_contain_text("No known vulnerability affects")
    # The history marks the affected release.
    old = page.locator(".release").filter(has=page.get_by_role("link", name="2.10", exact=True))
    expect(old.locator(".badge--vulnerable")).to_have_text("2 vulnerabilities")
    newer = page.locator(".release").filter(has=page.get_by_role("link", name="2.11.3"))
    expect(newer.locator(".badge--vulnerable")).to_have_count(0)
    screenshot(page, sites.shots, "advisories-project")

    old.get_by_role("link", name="2.10", exact=True).click()
    page.wait_for_url(re.compile(r".*/project/jinja2/2\.10/(#.*)?$"))  # maybe at its files
    expect(page.locator(".banner .badge--vulnerable")).to_have_text("2 known vulnerabilities")
    expect(page.locator(".notice--error")).to_contain_text("This release is affected by")
    listed = page.locator("#advisories > .advisories > .advisory")
    expect(listed).to_have_count(2)
    entry = listed.filter(has_text="PYSEC-2019-217")
    expect(entry).to_contain_text("CVE-2019-10906")
    expect(entry).to_contain_text("<2.10.1")
    expect(entry.locator("dd").nth(1)).to_have_text("2.10.1")  # fixed in
    screenshot(page, sites.shots, "advisories-release")

    entry.get_by_role("link", name="PYSEC-2019-217").click()
    page.wait_for_url("**/advisories/PYSEC-2019-217")
    expect(page.locator(".banner__title")).to_have_text("PYSEC-2019-217")
    expect(page.locator("#details")).to_contain_text("In Pallets Jinja before 2.10.1")
    references = page.locator("#references a")
    assert references.count() > 0
    for link in references.all():
        assert (link.get_attribute("href") or "").startswith(("https://", "http://"))
        assert link.get_attribute("rel") == "noopener nofollow noreferrer"
    screenshot(page, sites.shots, "advisories-record")
    page.locator("#affected").get_by_role("link", name="jinja2").click()
    page.wait_for_url("**/project/jinja2/")


def test_has_advisories_search(page: Page, sites: Sites) -> None:
    page.goto(sites.site.url + "/project/jinja2/")  # the search learns public names when served
    page.goto(sites.site.url + "/search?q=acme")
    expect(page.locator(".package-snippet")).to_have_count(1)
    page.fill("#q", "has:advisories")
    page.keyboard.press("Enter")
    # The filter sidebar's fields come along with the query.
    page.wait_for_url(re.compile(r".*/search\?q=has%3Aadvisories(&.*)?$"))
    results = page.locator(".package-snippet")
    for _ in range(20):  # jinja2's name is written to the search index in the background
        if results.count():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(results).to_have_count(1)
    expect(results).to_contain_text(re.compile("jinja2", re.IGNORECASE))
    screenshot(page, sites.shots, "advisories-search")


def test_an_in_house_release_requiring_an_affected_version(page: Page, sites: Sites) -> None:
    page.goto(sites.site.url + "/project/acme-web/")
    findings = page.locator("#dependency-findings")
    expect(findings).to_contain_text("Requires an affected version of jinja2")
    expect(findings.get_by_role("link", name="PYSEC-2019-217")).to_have_count(1)
    expect(page.locator(".banner .badge--vulnerable")).to_have_count(0)  # acme-web itself: none


def test_phone_width(chromium: Browser, sites: Sites) -> None:
    context = chromium.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    for path in ("/project/jinja2/2.10/", "/advisories/PYSEC-2019-217"):
        page.goto(sites.site.url + path)
        expect(page.locator(".banner__title")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone's screen"
    context.close()
