"""Fixtures that start real packyard processes and an upstream on 127.0.0.1.

`two_sites` is the dependency-confusion setting of the index issue: an
upstream packyard that publishes `acme-tools 99.0` and `public-lib`, and the
packyard under test, which has its own `acme-tools 1.0` and proxies the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.builders import build_sdist, build_wheel
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.e2e.servers import PackyardProcess

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class TwoSites:
    upstream: PackyardProcess
    site: PackyardProcess
    local_dir: Path
    upstream_dir: Path


@pytest.fixture(scope="session")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    root = tmp_path_factory.mktemp("two-sites")
    upstream_dir = root / "upstream-dists"
    local_dir = root / "local-dists"
    upstream_dir.mkdir()
    local_dir.mkdir()
    build_wheel(upstream_dir, "acme-tools", "99.0", summary="Not ours: a squatted name")
    build_wheel(upstream_dir, "public-lib", "1.0")
    build_wheel(upstream_dir, "public-lib", "2.0", requires_python=">=3.8")
    build_sdist(upstream_dir, "public-lib", "2.0")
    build_wheel(
        local_dir,
        "acme-tools",
        "1.0",
        requires_dist=("acme-core>=1.0", "public-lib>=2"),
        summary="The in-house tools",
    )
    build_wheel(local_dir, "acme-core", "1.0")
    build_sdist(local_dir, "acme-core", "1.0")

    upstream = PackyardProcess(root / "upstream-data")
    site = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    for server, dists in ((upstream, upstream_dir), (site, local_dir)):
        result = server.import_dir(dists)
        assert result.returncode == 0, result.stdout + result.stderr
    with upstream, site:
        yield TwoSites(upstream, site, local_dir, upstream_dir)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, one per test module."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop size."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()
