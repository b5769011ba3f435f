"""Search in a real browser: the ranked order, the filter sidebar kept in the URL
(through reload and the back button), and a result without summary.

The projects are chosen so that alphabetical order is wrong: `aardvark` only
has "req" in its summary, `legacy-req` and `zope-req` have it as a word of
their name, `requests` and `req-tools` start with it, and `req` is it.
Download counts are covered by the unit tests (tests/unit/search/test_ranking.py):
the served site copies the usage roll-ups into the index only every few minutes.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel, metadata_text
from tests.e2e.chromium import screenshot
from tests.e2e.servers import PackyardProcess

pytestmark = pytest.mark.e2e
DJANGO = "Framework :: Django"


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    shots: Path

    def names(self, page: Page) -> list[str]:
        return page.locator(".package-snippet__name").all_inner_texts()


def with_classifier(name: str, version: str, summary: str) -> str:
    text = metadata_text(name, version, summary=summary)
    head, _, rest = text.partition(f"Version: {version}\n")
    return f"{head}Version: {version}\nClassifier: {DJANGO}\n{rest}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("search")
    public, local = root / "public-dists", root / "local-dists"
    public.mkdir()
    local.mkdir()
    build_wheel(public, "legacy-req", "1.0", summary="An old one")
    build_wheel(local, "aardvark", "1.0", summary="A req parser")
    build_wheel(local, "req", "1.0", summary="The exact one")
    build_wheel(local, "req-tools", "1.0", summary=None)
    build_wheel(
        local, "requests", "1.0", metadata=with_classifier("requests", "1.0", "HTTP for Humans")
    )
    build_wheel(local, "zope.req", "1.0", summary="Zope's")
    upstream = PackyardProcess(root / "upstream-data")
    server = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    for process, dists in ((upstream, public), (server, local)):
        result = process.import_dir(dists)
        assert result.returncode == 0, result.stdout + result.stderr
    with upstream, server:
        # A public project is searchable once this server has served it.
        urllib.request.urlopen(server.url + "/simple/legacy-req/", timeout=10).close()
        deadline = time.monotonic() + 15
        while b"legacy-req" not in fetch(server.url + "/search?q=legacy"):
            assert time.monotonic() < deadline, "legacy-req never reached the search index"
            time.sleep(0.2)
        yield Site(server, root / "screenshots")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def test_exact_then_prefixes_then_name_words_then_summary(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/")
    page.fill("#q", "req")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=req")
    expect(page.locator(".package-snippet")).to_have_count(6)
    names = site.names(page)
    assert names[0] == "req"
    assert set(names[1:3]) == {"requests", "req-tools"}
    assert set(names[3:5]) == {"zope.req", "legacy-req"}
    assert names[5] == "aardvark"
    screenshot(page, site.shots, "search-ranked")


def test_filters_live_in_the_url_through_reload_and_back(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/search?q=req")
    expect(page.get_by_role("radio", name="Any")).to_be_checked()
    page.get_by_role("radio", name="In-house").check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/search?q=req&source=in-house")
    expect(page.locator(".package-snippet")).to_have_count(5)
    assert "legacy-req" not in site.names(page)

    page.get_by_role("checkbox", name=DJANGO).check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/search?q=req&source=in-house&classifier=Framework*")
    assert site.names(page) == ["requests"]
    filtered = page.url
    screenshot(page, site.shots, "search-filtered")

    page.reload()
    assert page.url == filtered
    expect(page.get_by_role("radio", name="In-house")).to_be_checked()
    expect(page.get_by_role("checkbox", name=DJANGO)).to_be_checked()
    assert site.names(page) == ["requests"]

    page.go_back()
    page.wait_for_url("**/search?q=req&source=in-house")
    expect(page.get_by_role("checkbox", name=DJANGO)).not_to_be_checked()
    expect(page.locator(".package-snippet")).to_have_count(5)
    page.go_back()
    page.wait_for_url("**/search?q=req")
    expect(page.get_by_role("radio", name="Any")).to_be_checked()
    expect(page.locator(".package-snippet")).to_have_count(6)


def test_a_result_without_summary_keeps_a_small_badge(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/search?q=req-tools")
    snippet = page.locator(".package-snippet", has_text="req-tools").first
    expect(snippet.locator(".package-snippet__summary")).to_have_count(0)
    badge = snippet.locator(".badge")
    expect(badge).to_have_text("in-house")
    badge_box, snippet_box = badge.bounding_box(), snippet.bounding_box()
    assert badge_box is not None
    assert snippet_box is not None
    assert badge_box["width"] < 120, badge_box  # a pill, not a bar
    assert badge_box["width"] < snippet_box["width"] / 4
