"""Every page passes axe-core (vendored in tests/data/axe-core, injected through
Playwright: nothing from a CDN) with no serious or critical violation; every
page fits a phone's width without sideways scrolling; and the pages work by
keyboard.

One `packyard serve` with an in-house project (a README, two releases, one
yanked), a public project from a static upstream, the real advisory records of
Jinja2, an admin and a user.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.advisory_data import SNAPSHOT
from tests.builders import build_wheel
from tests.e2e.servers import PackyardProcess, StaticIndexProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parents[1] / "data" / "axe-core" / "axe.min.js"
ADMIN, ADMIN_PASSWORD = "root", "root-secret-pw"
BLOCKING = ("serious", "critical")
PUBLIC_PAGES = [
    "/",
    "/search?q=acme",
    "/search?q=nothing-matches-this",
    "/project/acme-tools/",
    "/project/acme-tools/1.0/",
    "/project/public-lib/",
    "/help/",
    "/project/no-such-project/",
    "/admin/sign-in",
    "/advisories/PYSEC-2019-217",
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/account",
    "/admin/project/acme-tools/",
    "/admin/users",
    "/admin/groups",
    "/admin/names",
    "/admin/deletions",
    "/admin/audit",
    "/admin/dashboard",
    "/admin/policies",
    "/admin/project/acme-tools/delete?version=1.1",
    "/admin/names/release?name=acme-tools",
]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Site:
    server: PackyardProcess


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("a11y")
    local, public = root / "local", root / "public"
    local.mkdir()
    public.mkdir()
    readme = "# acme-tools\n\nTools for **acme**.\n\n```python\nimport acme\n```\n"
    for version in ("1.0", "1.1"):
        build_wheel(local, "acme-tools", version, description=readme, requires_dist=["public-lib"])
    upstream_files = [build_wheel(public, "public-lib", "2.0", summary="A public library")]
    with StaticIndexProcess(root / "upstream", upstream_files) as upstream:
        server = PackyardProcess(root / "data", upstreams=[upstream.index_url])
        imported = server.import_dir(local)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        state = ["--data-dir", str(server.data_dir)]
        added = packyard(
            "user",
            "add",
            ADMIN,
            "--password-stdin",
            "--admin",
            *state,
            input=ADMIN_PASSWORD + "\n",
            env=clean_environment(),
        )
        assert added.returncode == 0, added.stdout + added.stderr
        yanked = packyard(
            "yank",
            "acme-tools",
            "1.0",
            "--reason",
            "Broken build",
            *state,
            env=clean_environment(),
        )
        assert yanked.returncode == 0, yanked.stdout + yanked.stderr
        records = root / "vulns"
        shutil.copytree(SNAPSHOT / "jinja2", records / "jinja2")  # the real records, as they are
        imported = packyard("advisories", "import", str(records), *state, env=clean_environment())
        assert imported.returncode == 0, imported.stdout + imported.stderr
        with server:
            yield Site(server)


def violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in found if v.get("impact") in BLOCKING]


def describe(found: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"][:5]],
            }
            for v in found
        ],
        indent=1,
    )


def signed_in_page(browser: Browser, site: Site, viewport: dict[str, int]) -> Page:
    # bypass_csp: axe is injected as an inline script, which the pages' CSP forbids.
    context = browser.new_context(viewport=viewport, bypass_csp=True)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(site.server.url + "/admin/sign-in")
    page.fill("#username", ADMIN)
    page.fill("#password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Hello, {ADMIN}")).to_be_visible()
    return page


def test_every_page_passes_axe_and_fits_a_phone(chromium: Browser, site: Site) -> None:
    """One visit per page: axe-core at desktop width, then the width at a phone's."""
    page = signed_in_page(chromium, site, DESKTOP)
    failures, wide = {}, {}
    for path in PUBLIC_PAGES + ADMIN_PAGES:
        page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
        page.goto(site.server.url + path)
        page.wait_for_load_state("networkidle")
        found = violations(page)
        if found:
            failures[path] = describe(found)
        page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
    page.context.close()
    assert not failures, "\n".join(f"{path}: {text}" for path, text in failures.items())
    assert not wide, f"wider than a phone ({PHONE['width']} px): {wide}"


def test_search_and_a_project_are_reached_by_keyboard(chromium: Browser, site: Site) -> None:
    page = chromium.new_context(viewport=DESKTOP).new_page()  # type: ignore[arg-type]
    page.goto(site.server.url + "/project/public-lib/")
    page.keyboard.press("Tab")  # the first stop skips to the content
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.goto(site.server.url + "/")
    expect(page.get_by_role("searchbox").first).to_be_focused()  # the home page's search
    page.keyboard.type("acme")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site.server.url}/search?q=acme")
    for _ in range(40):
        page.keyboard.press("Tab")
        text = page.evaluate("document.activeElement.textContent") or ""
        if text.strip().startswith("acme-tools"):
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site.server.url}/project/acme-tools/")
    page.context.close()
