"""Usage at a glance, in a real browser: a known sequence of downloads and uploads
against `packyard serve`, then the admin dashboard and the project page's chart.

The server proxies a real upstream on 127.0.0.1 (`bad_upstream.py`): a public
file fetched once (a cache miss) then served twice from the cache (hits), and
two faults of that upstream (a page it garbles, a file it cuts short), each an
upstream error.

The counts reach the database when the server stops (its last flush) and are
read by the next server on the same data directory: they survive a restart.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel
from tests.e2e.bad_upstream import BadUpstreamProcess, content, filename
from tests.e2e.cached_site import ConfiguredPackyard
from tests.e2e.chromium import screenshot
from tests.e2e.clients import post_upload
from tests.e2e.servers import PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

PASSWORD = "root-secret-pw"
ALPHA = "alpha_tools-1.0-py3-none-any.whl"
BETA = "beta_tools-1.0-py3-none-any.whl"
# The upstream's project without a fault: its file is fetched once, then cached.
PUBLIC = "good"


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("usage")
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "alpha-tools", "1.0", summary="Alpha")
    build_wheel(dists, "beta-tools", "1.0", summary="Beta")
    upstream = BadUpstreamProcess(root)
    server = ConfiguredPackyard(root / "data", upstream.index_url, page_ttl=600)
    result = server.import_dir(dists)
    assert result.returncode == 0, result.stdout + result.stderr
    added = packyard(
        "user", "add", "root", "--password-stdin", "--admin",
        "--data-dir", str(server.data_dir),
        input=PASSWORD + "\n", env=clean_environment(),
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    uploads = root / "uploads"
    uploads.mkdir()
    gamma = build_wheel(uploads, "gamma-tools", "1.0", summary="Gamma")
    changed_alpha = build_wheel(uploads, "alpha-tools", "1.0", summary="Alpha, rebuilt")
    with upstream:
        with server:
            for _ in range(3):
                response = httpx.get(f"{server.url}/files/alpha-tools/{ALPHA}", timeout=10)
                assert response.status_code == 200
            beta = httpx.get(f"{server.url}/files/beta-tools/{BETA}", timeout=10)
            assert beta.status_code == 200
            # A resolver's `.metadata` read is not a download.
            metadata = httpx.get(f"{server.url}/files/beta-tools/{BETA}.metadata", timeout=10)
            assert metadata.status_code == 200
            legacy, credentials = server.url + "/legacy/", ("root", PASSWORD)
            assert post_upload(legacy, gamma, credentials).status_code == 200
            # Other bytes under a filename that exists: refused, and audited as such.
            assert post_upload(legacy, changed_alpha, credentials).status_code == 400
            download_public_file(server)
            # Two upstream errors: a page that is not JSON, a file shorter than listed.
            garbled = httpx.get(f"{server.index_url}html-as-json/", timeout=30)
            assert garbled.status_code == 502, garbled.text
            short = httpx.get(f"{server.url}/files/short-file/{filename('short-file')}", timeout=30)
            assert short.status_code == 502, short.text
        # Stopped: its last flush wrote the counts. A new server reads them.
        with server:
            yield Site(server, root / "screenshots")


def download_public_file(server: ConfiguredPackyard) -> None:
    """The upstream's public file three times: fetched (a miss), then from the cache (hits)."""
    url = f"{server.url}/files/{PUBLIC}/{filename(PUBLIC)}"
    first = httpx.get(url, timeout=30)
    assert first.status_code == 200
    assert first.content == content(PUBLIC)
    # Committed to the cache just after the client got its last byte: the blob,
    # then its row, which a lookup needs (`repository/file_cache.py`).
    deadline = time.monotonic() + 10
    while not cached_rows(server.data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [path.name for path in server.cached_blobs()] == [filename(PUBLIC)]
    for _ in range(2):
        again = httpx.get(url, timeout=30)
        assert again.status_code == 200
        assert again.content == content(PUBLIC)


def cached_rows(data_dir: Path) -> int:
    """The rows of the site's file cache table."""
    with closing(sqlite3.connect(data_dir / "packyard.db")) as database:
        return int(database.execute("SELECT count(*) FROM cached_files").fetchone()[0])


def sign_in(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/admin/sign-in")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello, root")).to_be_visible()


def test_the_dashboard_shows_the_downloads_uploads_and_refusals(page: Page, site: Site) -> None:
    sign_in(page, site)
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    # alpha-tools 3 and beta-tools 1 (local: hits), `good` 3 (a miss, then 2 hits).
    expect(page.locator("#total-downloads")).to_have_text("7")
    expect(page.locator("#total-uploads")).to_have_text("1")
    expect(page.locator("#cache-hit-rate")).to_have_text("86%")  # 6 of 7
    expect(page.locator("#upstream-errors")).to_have_text("2")
    # The mean over the upstream's answers: pages and files alike, faults included.
    expect(page.locator("#upstream-latency")).to_have_text(re.compile(r"^\d+ ms$"))
    rows = page.locator("#top-projects tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_text("alpha-tools3")
    expect(rows.nth(1)).to_have_text(f"{PUBLIC}3")
    expect(rows.nth(2)).to_have_text("beta-tools1")
    # Today's bar of the site's chart, and its text alternative.
    today = page.locator("svg[aria-labelledby='site-downloads-title'] rect").last
    expect(today).to_have_attribute("data-value", "7")
    expect(page.locator("#site-downloads-caption")).to_contain_text("7 downloads in the last 30")
    uploads = page.locator("#recent-uploads tbody tr")
    expect(uploads).to_have_count(1)
    expect(uploads.first).to_contain_text("gamma_tools-1.0-py3-none-any.whl")
    refusals = page.locator("#recent-refusals tbody tr")
    expect(refusals).to_have_count(1)
    expect(refusals.first).to_contain_text("root")
    expect(refusals.first).to_contain_text("alpha-tools")
    screenshot(page, site.shots, "admin-dashboard")


def test_the_project_page_shows_its_downloads_chart(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/project/alpha-tools/")
    section = page.locator("#downloads")
    expect(section.get_by_role("heading", name="Downloads from this server")).to_be_visible()
    chart = section.get_by_role("img")
    expect(chart).to_have_accessible_name(re.compile(r"^3 downloads in the last 30 days"))
    expect(section.locator("figcaption")).to_contain_text("3 downloads in the last 30 days")
    bars = section.locator("rect")
    expect(bars).to_have_count(30)
    expect(bars.last).to_have_attribute("data-value", "3")
    screenshot(page, site.shots, "project-downloads")


def test_a_project_never_downloaded_says_so(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/project/gamma-tools/")
    expect(page.locator("#downloads figcaption")).to_have_text("No downloads in the last 30 days.")
