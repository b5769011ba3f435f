"""The admin pages in a real browser: Debian's Chromium driven by Playwright.

One `packyard serve` process with an in-house package; users made with the
command line (`packyard user add … --password-stdin`). Everything goes
through the forms, as a person would: sign in, yank a file with a reason,
create a token, sign out; and a normal user is kept out of the admin pages.
Screenshots go where test_browser.py's go (`$PACKYARD_SCREENSHOTS_DIR`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel
from tests.e2e.chromium import screenshot
from tests.e2e.servers import PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

USERS = {"root": ("root-secret-pw", True), "nina": ("nina-secret-pw", False)}
WHEEL = "acme_tools-1.0-py3-none-any.whl"
REASON = "Broken build: use 1.1"


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("admin")
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-tools", "1.0", summary="The in-house tools")
    build_wheel(dists, "acme-tools", "1.1", summary="The in-house tools")
    server = PackyardProcess(root / "data")
    result = server.import_dir(dists)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, (password, admin) in USERS.items():
        flags = ["--admin"] if admin else []
        added = packyard(
            "user",
            "add",
            name,
            "--password-stdin",
            *flags,
            "--data-dir",
            str(server.data_dir),
            input=password + "\n",
            env=clean_environment(),
        )
        assert added.returncode == 0, added.stdout + added.stderr
    with server:
        yield Site(server, root / "screenshots")


def sign_in(page: Page, site: Site, name: str) -> None:
    page.goto(site.server.url + "/project/acme-tools/")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.fill("#username", name)
    page.fill("#password", USERS[name][0])
    page.get_by_role("button", name="Sign in").click()


def test_admin_yanks_a_file_creates_a_token_and_signs_out(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/admin/sign-in")
    screenshot(page, site.shots, "admin-sign-in")
    sign_in(page, site, "root")
    expect(page.get_by_role("heading", name="Hello, root")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "packyard_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    # From the project page to its admin page, then yank one file with a reason.
    page.goto(site.server.url + "/project/acme-tools/")
    page.get_by_role("link", name="Manage acme-tools").click()
    expect(page.get_by_role("heading", name="Manage acme-tools")).to_be_visible()
    page.locator("summary", has_text="1.0").click()
    row = page.locator(f'li.admin-file[data-filename="{WHEEL}"]')
    row.get_by_placeholder("Reason").fill(REASON)
    row.get_by_role("button", name="Yank").click()
    expect(page.get_by_role("status")).to_have_text(f"Yanked {WHEEL}.")
    page.locator("summary", has_text="1.0").click()
    expect(row.locator(".yank-reason")).to_have_text(f"Reason: {REASON}")
    screenshot(page, site.shots, "admin-project")

    # The public page and the simple index both say so.
    page.goto(site.server.url + "/project/acme-tools/1.0/")
    expect(page.locator(".file", has_text=WHEEL).locator(".yank-reason")).to_have_text(
        f"Reason: {REASON}"
    )
    simple = httpx.get(site.server.url + "/simple/acme-tools/", timeout=10).text
    anchor = next(
        line for line in simple.splitlines() if WHEEL + "#" in line or f">{WHEEL}<" in line
    )
    assert f'data-yanked="{REASON}"' in anchor

    # A token, shown once.
    page.goto(site.server.url + "/admin/account")
    page.fill("#description", "laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"pky_[A-Za-z0-9_-]{43}", token)
    page.goto(site.server.url + "/admin/account")
    expect(page.locator("#new-token")).to_have_count(0)
    assert token not in page.content()
    expect(page.locator("td", has_text=token[:12])).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(site.server.url + "/admin/account")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_normal_user_cannot_reach_the_admin_pages(page: Page, site: Site) -> None:
    sign_in(page, site, "nina")
    expect(page.get_by_role("heading", name="Hello, nina")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    for path in (
        "/admin/users",
        "/admin/groups",
        "/admin/names",
        "/admin/names/release?name=acme-tools",
        "/admin/project/acme-tools/delete-project",
        "/admin/deletions",
        "/admin/audit",
        "/admin/project/acme-tools/",
    ):
        response = page.goto(site.server.url + path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
