"""A project page as on PyPI, in a real browser (Debian's Chromium, Playwright).

A static upstream with `public-lib`, and the site under test (`packyard
serve`), whose configuration names that upstream `corp-mirror` and allows
README images from one host. `acme-tools` is uploaded with the real twine by
alice (so she owns it), and the group `platform` maintains it. Its metadata
lists two authors in one Author-email and a maintainer by address only; its
README has a badge from a host the page may not load and one it may.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from packyard.auth.identity import Identity
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.publish.accounts import add_user, create_group, create_token
from packyard.publish.ownership import add_role
from tests.builders import build_wheel, metadata_text
from tests.e2e.chromium import TIMEOUT_MS, screenshot
from tests.e2e.clients import run
from tests.e2e.servers import BIN, PackyardProcess, StaticIndexProcess

pytestmark = pytest.mark.e2e

README = (
    "# Acme tools\n\n"
    "![build status](https://img.shields.io/badge/build-passing-green)\n"
    "![coverage](https://img.allowed.example/coverage.svg)\n\n"
    "Everything we build in house.\n"
)


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    upstream: StaticIndexProcess
    wheel: Path
    shots: Path


ROOT = Identity(kind="cli", name="root", is_admin=True)


def accounts(data_dir: Path) -> str:
    """alice (with a token, returned) and the group platform, written in-process:
    each `packyard` command costs seconds of start-up on a busy machine."""
    engine = create_database_engine(f"sqlite:///{data_dir / 'packyard.db'}")
    try:
        with session_factory_for(engine).begin() as session:
            add_user(session, "alice", None, actor=ROOT)
            create_group(session, "platform", actor=ROOT)
            session.flush()
            token, _ = create_token(session, "alice", actor=ROOT)
    finally:
        engine.dispose()
    return token


def maintained_by_platform(data_dir: Path) -> None:
    engine = create_database_engine(f"sqlite:///{data_dir / 'packyard.db'}")
    try:
        with session_factory_for(engine).begin() as session:
            add_role(session, ROOT, "acme-tools", "maintainer", group="platform")
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("project-page")
    public, local = root / "public", root / "local"
    public.mkdir()
    local.mkdir()
    public_wheel = build_wheel(public, "public-lib", "1.0")
    metadata = metadata_text("acme-tools", "1.0", summary="The in-house tools", description=README)
    metadata = metadata.replace(
        "Version: 1.0\n",
        "Version: 1.0\n"
        'Author-email: "Jane Doe" <jane@example.org>, Bob <bob@example.org>\n'
        "Maintainer-email: team@example.org\n",
        1,
    )
    wheel = build_wheel(local, "acme-tools", "1.0", metadata=metadata)
    upstream = StaticIndexProcess(root / "upstream", [public_wheel])
    config = root / "packyard.toml"
    config.write_text(
        f'[[upstreams]]\nurl = "{upstream.index_url}"\nname = "corp-mirror"\n\n'
        '[browser]\nimage_hosts = ["img.allowed.example"]\n'
    )
    server = PackyardProcess(root / "site-data", upstreams=())
    server.environment["PACKYARD_CONFIG"] = str(config)
    server.init()
    token = accounts(server.data_dir)
    with upstream, server:
        argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        argv += ["--repository-url", server.url + "/legacy/", "-u", "__token__", "-p", token]
        uploaded = run([*argv, str(wheel)])
        assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
        maintained_by_platform(server.data_dir)  # alice owns it: she uploaded it first
        yield Site(server, upstream, wheel, root / "screenshots")


def test_maintainers_authors_and_files_as_on_pypi(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/project/acme-tools/")

    maintainers = page.locator("#maintainers")
    expect(maintainers.locator(".maintainer")).to_have_count(2)
    expect(maintainers.locator(".maintainer").first).to_contain_text("alice")
    expect(maintainers.locator(".maintainer").first).to_contain_text("owner")
    expect(maintainers.locator(".maintainer").nth(1)).to_contain_text("platform")
    expect(maintainers.locator(".maintainer").nth(1)).to_contain_text("group")

    # Two people in one Author-email, each a mailto link; no doubled brackets.
    meta = page.locator(".meta")
    expect(meta.locator('a[href="mailto:jane@example.org"]')).to_have_text("Jane Doe")
    expect(meta.locator('a[href="mailto:bob@example.org"]')).to_have_text("Bob")
    expect(meta.locator('a[href="mailto:team@example.org"]')).to_have_text("team@example.org")
    expect(meta).not_to_contain_text("<")

    # The file: who uploaded it with what, and every hash PyPI shows.
    content = site.wheel.read_bytes()
    files = page.locator("#files")
    expect(files.locator(".uploaded-by")).to_have_text("alice")
    expect(files.locator(".uploaded-via")).to_contain_text("twine/")
    for digest in (
        hashlib.sha256(content).hexdigest(),
        hashlib.md5(content).hexdigest(),  # noqa: S324 - PyPI shows it; not for security
        hashlib.blake2b(content, digest_size=32).hexdigest(),
    ):
        expect(files.locator("code.hash", has_text=digest)).to_have_count(1)
    expect(files).to_contain_text("BLAKE2b-256")

    # The badge on another host is its alt text; the allowed host's image stays.
    readme = page.locator(".readme")
    expect(readme.locator(".readme-image-alt")).to_have_text("build status")
    expect(readme.locator('img[src*="img.shields.io"]')).to_have_count(0)
    expect(readme.locator('img[src="https://img.allowed.example/coverage.svg"]')).to_have_count(1)
    screenshot(page, site.shots, "project-in-house")


def test_tabs_work_without_javascript(chromium: Browser, site: Site) -> None:
    context = chromium.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(site.server.url + "/project/acme-tools/")
    tabs = page.get_by_role("navigation", name="Sections of this page")
    for name, anchor in (
        ("Release history", "#history"),
        ("Download files", "#files"),
        ("Description", "#details"),
    ):
        tabs.get_by_role("link", name=name).click()
        page.wait_for_url("**/project/acme-tools/" + anchor)
        expect(page.locator(anchor)).to_be_in_viewport()
    # The release history leads to the files of each release.
    page.locator("#history").get_by_role("link", name="1.0").click()
    page.wait_for_url("**/project/acme-tools/1.0/#files")
    expect(page.locator("#files .file")).to_have_count(1)
    context.close()


def test_the_upstream_by_its_name_and_a_clean_loading_state(
    chromium: Browser, page: Page, site: Site
) -> None:
    # Without JavaScript the placeholder stays: it shows no missing-glyph character.
    context = chromium.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    bare = context.new_page()
    bare.goto(site.server.url + "/project/public-lib/")
    loading = bare.locator(".loading")
    expect(loading).to_have_text(
        "Loading the project description and dependencies from the upstream…"
    )
    before = loading.evaluate("e => getComputedStyle(e, '::before').content")
    assert before in ("none", "normal", '""'), before
    expect(loading.locator(".spinner")).to_have_count(1)
    context.close()

    page.goto(site.server.url + "/project/public-lib/")
    banner = page.locator(".banner")
    expect(banner).to_contain_text("public: corp-mirror")
    expect(banner).not_to_contain_text(site.upstream.url.removeprefix("http://"))
