"""Curation changed on the admin page, in a real browser, against a running server:
a real upstream packyard with `public-lib`, and the site under test, which proxies
it under the name `upstream` from a configuration file. A deny rule added on
`/admin/policies` must stop pip on the very next request, and its removal let
pip back (the rules are in the database, the serial bumped with them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel
from tests.e2e.chromium import screenshot
from tests.e2e.clients import installed, pip_install
from tests.e2e.servers import (
    PYTHON,
    PackyardProcess,
    ServerProcess,
    clean_environment,
    free_port,
    packyard,
)

pytestmark = pytest.mark.e2e

PASSWORD = "root-secret-pw"


@dataclass(frozen=True)
class Site:
    server: ServerProcess
    shots: Path

    @property
    def index_url(self) -> str:
        return self.server.url + "/simple/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("policy-pages")
    dists = root / "upstream-dists"
    dists.mkdir()
    build_wheel(dists, "public-lib", "1.0")
    upstream = PackyardProcess(root / "upstream-data")
    result = upstream.import_dir(dists)
    assert result.returncode == 0, result.stdout + result.stderr
    config = root / "packyard.toml"
    config.write_text(f'[[upstreams]]\nurl = "{upstream.index_url}"\nname = "upstream"\n')
    state = ["--config", str(config), "--data-dir", str(root / "site-data")]
    port = free_port()
    argv = [PYTHON, "-m", "packyard", "serve", *state, "--port", str(port)]
    with upstream, ServerProcess(argv, port, root / "site.log", "/healthz") as server:
        added = packyard(
            "user",
            "add",
            "root",
            "--password-stdin",
            "--admin",
            *state,
            input=PASSWORD + "\n",
            env=clean_environment(),
        )
        assert added.returncode == 0, added.stdout + added.stderr
        yield Site(server, root / "screenshots")


def test_a_deny_added_on_the_page_blocks_pip_and_its_removal_lets_it_back(
    page: Page, site: Site, tmp_path: Path
) -> None:
    assert httpx.get(site.index_url + "public-lib/", timeout=10).status_code == 200  # cached

    page.goto(site.server.url + "/admin/sign-in")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Upstream policies").first.click()
    card = page.get_by_role("region", name="upstream")
    expect(card.get_by_role("heading", name="upstream")).to_be_visible()
    card.get_by_label("Rule", exact=True).select_option("deny")
    card.get_by_label("Name glob for upstream").fill("Public_*")
    card.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_have_text("Added deny 'public-*' on upstream.")
    screenshot(page, site.shots, "admin-policies")

    denied = pip_install(site.index_url, tmp_path / "denied", "public-lib")
    assert denied.returncode != 0
    assert "No matching distribution" in denied.stderr

    page.get_by_role("button", name="Remove the deny rule public-* of upstream").click()
    expect(page.get_by_role("status")).to_have_text("Removed deny 'public-*' from upstream.")
    expect(page.locator("tr[data-rule]")).to_have_count(0)

    after = pip_install(site.index_url, tmp_path / "after", "public-lib")
    assert after.returncode == 0, after.stdout + after.stderr
    assert installed(tmp_path / "after") == {"public-lib": "1.0"}
