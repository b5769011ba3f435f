"""The web pages in a real browser: Debian's Chromium driven by Playwright.

Two real `packyard serve` processes: an upstream that publishes `public-lib`,
and the site under test, with in-house packages and the upstream behind it.
Chromium is the system's (`/usr/bin/chromium`, installed by scripts/test.sh);
`playwright install` is never run.

Screenshots are written to the test's temporary directory, and also to
`$PACKYARD_SCREENSHOTS_DIR` when set (how docs/screenshots/ is refreshed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import build_wheel
from tests.e2e.chromium import TIMEOUT_MS, screenshot
from tests.e2e.servers import PackyardProcess

pytestmark = pytest.mark.e2e

XSS_README = (
    "# Evil\n\n<script>window.xss=1</script>\n\n"
    '<img src=x onerror="window.xss=2">\n\n[click](javascript:window.xss=3)\n'
)


@dataclass(frozen=True)
class Sites:
    site: PackyardProcess
    upstream: PackyardProcess
    shots: Path


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("browser")
    public, local = root / "public-dists", root / "local-dists"
    public.mkdir()
    local.mkdir()
    build_wheel(public, "public-lib", "1.0", description="The *first* one.")
    build_wheel(
        public,
        "public-lib",
        "2.0",
        summary="A public library",
        description="# public-lib\n\nLoaded *later*, from the upstream.",
    )
    build_wheel(
        local,
        "acme-tools",
        "1.0",
        summary="The in-house tools",
        requires_dist=("acme-core>=1.0", 'public-lib>=2; python_version >= "3.8"'),
        description="# Acme tools\n\nEverything we build **in house**.",
        project_urls=(("Repository", "https://git.example/acme/tools"),),
    )
    build_wheel(local, "acme-core", "1.0", summary="The core of everything")
    build_wheel(local, "evil-pkg", "6.6.6", summary="<b>bold</b>", description=XSS_README)
    upstream = PackyardProcess(root / "upstream-data")
    site = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    for server, dists in ((upstream, public), (site, local)):
        result = server.import_dir(dists)
        assert result.returncode == 0, result.stdout + result.stderr
    with upstream, site:
        yield Sites(site, upstream, root / "screenshots")


def test_search_open_a_project_and_follow_a_dependency(page: Page, sites: Sites) -> None:
    page.goto(sites.site.url + "/")
    expect(page.locator(".hero__stats")).to_contain_text("3 in-house projects")
    screenshot(page, sites.shots, "home")

    page.fill("#q", "acme")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=acme")
    results = page.locator(".package-snippet")
    expect(results).to_have_count(2)
    expect(results.filter(has_text="acme-tools")).to_contain_text("in-house")
    screenshot(page, sites.shots, "search")

    results.filter(has_text="acme-tools").click()
    page.wait_for_url("**/project/acme-tools/")
    expect(page.locator(".banner__title")).to_have_text("acme-tools 1.0")
    expect(page.locator(".banner")).to_contain_text("in-house")
    dependencies = page.locator("#dependencies")
    expect(dependencies).to_contain_text("acme-core")
    expect(dependencies).to_contain_text('python_version >= "3.8"')
    expect(page.locator(".readme strong")).to_have_text("in house")
    screenshot(page, sites.shots, "project")

    # A public dependency: its page comes at once, its README is loaded by app.js.
    page.evaluate("window.sameDocument = true")
    dependencies.get_by_role("link", name="public-lib").click()
    page.wait_for_url("**/project/public-lib/")
    # An upstream without a configured name is labelled by its host, not its URL.
    expect(page.locator(".banner")).to_contain_text(
        "public: " + sites.upstream.url.removeprefix("http://")
    )
    expect(page.locator(".banner")).not_to_contain_text(sites.upstream.index_url)
    expect(page.locator(".readme em")).to_have_text("later")
    expect(page.locator("[data-details-url]")).to_have_count(0)
    expect(page.locator("#used-by")).to_contain_text("acme-tools")
    # The fragment replaced the placeholder in place: this is still the page loaded.
    assert page.evaluate("window.sameDocument === undefined")  # a new page after the click
    page.evaluate("window.sameDocument = true")
    page.wait_for_timeout(300)
    assert page.evaluate("window.sameDocument") is True  # no reload loop


def test_public_details_without_javascript(chromium: Browser, sites: Sites) -> None:
    context = chromium.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    # 1.0: a release whose metadata no other test has made the server fetch yet.
    page.goto(sites.site.url + "/project/public-lib/1.0/")
    page.get_by_role("link", name="Show the description, dependencies and links").click()
    page.wait_for_url("**/project/public-lib/1.0/details")
    expect(page.locator(".readme em")).to_have_text("first")
    context.close()


def test_a_hostile_readme_does_not_run(page: Page, sites: Sites) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(sites.site.url + "/project/evil-pkg/")
    expect(page.locator(".readme h1")).to_have_text("Evil")
    expect(page.locator(".summary")).to_have_text("<b>bold</b>")  # shown, not rendered
    page.wait_for_timeout(300)  # give an onerror handler time to fire, if one survived
    assert page.evaluate("typeof window.xss") == "undefined"
    for link in page.locator(".readme a").all():
        assert not (link.get_attribute("href") or "").startswith("javascript:")
    assert errors == []


def test_phone_width(chromium: Browser, sites: Sites) -> None:
    context = chromium.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(sites.site.url + "/project/acme-tools/")
    expect(page.locator("#dependencies")).to_contain_text("public-lib")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than a phone's screen"
    screenshot(page, sites.shots, "phone")
    context.close()
