"""Signing in with the organisation, end to end: a real OpenID Connect provider
(django-oidc-provider, `tests/oidc_provider`), a real LDAP directory (Debian's
slapd, `tests/slapd.py`), `packyard serve`, and Debian's Chromium through Playwright.

A person clicks "Sign in with lab", types their password on the provider's page,
consents, and comes back signed in, with the groups the ID token and LDAP give
them, owning what their group owns. Their groups follow the directory; a
person the directory drops is disabled by the scheduled refresh, their token
dies and their project goes to their manager, who is told. Every way the
sign-in can go wrong is a page that says so, with the right status.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel
from tests.e2e.chromium import screenshot
from tests.e2e.servers import PackyardProcess, clean_environment, packyard
from tests.oidc_provider import OidcProvider, OidcUser, running_oidc_provider
from tests.slapd import Slapd, start_slapd

pytestmark = pytest.mark.e2e

CLIENT_ID, CLIENT_SECRET = "packyard", "packyard-client-secret"
PASSWORDS = {name: f"{name}-directory-pw" for name in ("alice", "bob", "carol", "mallory", "dora")}
REFRESH_MINUTES = 0.05  # the directory is looked at every 3 s


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    provider: OidcProvider
    slapd: Slapd
    config: Path
    shots: Path

    def cli(self, *args: str) -> str:
        state = ["--config", str(self.config), "--data-dir", str(self.server.data_dir)]
        result = packyard(*args[:2], *state, *args[2:], env=clean_environment())
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def config_text(slapd: Slapd, provider: OidcProvider, secret_file: Path) -> str:
    return f"""
[auth]
local_passwords = true

[[auth.sso]]
name = "lab"
issuer = "{provider.issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret_file}"
scopes = ["openid", "profile", "email", "groups"]
manager_claim = "manager"

[[auth.sso]]
name = "nameless"
issuer = "{provider.issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret_file}"
user_claim = "employee_number"

[auth.ldap]
url = "{slapd.url}"
bind_dn = "{slapd.bind_dn}"
bind_secret = "{slapd.bind_password}"
base_dn = "ou=people,{slapd.base_dn}"
group_base_dn = "ou=groups,{slapd.base_dn}"
timeout_seconds = 1

[auth.directory_groups]
map = {{ "Accelerator Controls" = "acc-controls" }}
include = ["team-*"]
admins = "packyard-admins"

[auth.succession]
fallback_group = "acc-controls"
refresh_minutes = {REFRESH_MINUTES}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("sso")
    slapd = start_slapd(root)
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "acc-tools", "1.0", summary="Accelerator tools")
    build_wheel(dists, "carol-notes", "1.0", summary="Carol's notes")
    server = PackyardProcess(root / "data")
    secret_file = root / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    with running_oidc_provider(root / "provider") as provider:
        callbacks = [f"{server.url}/admin/sso/{name}/callback" for name in ("lab", "nameless")]
        provider.add_client(CLIENT_ID, CLIENT_SECRET, callbacks)
        groups = {"alice": ["team-beam"]}
        for name, password in PASSWORDS.items():
            person = OidcUser(name, password, f"{name}@lab.example", name.title())
            person.groups = groups.get(name, [])
            provider.add_user(person)
        config = root / "packyard.toml"
        config.write_text(config_text(slapd, provider, secret_file))
        server.argv += ["--config", str(config)]
        site = Site(server, provider, slapd, config, root / "screenshots")
        imported = server.import_dir(dists)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        site.cli("group", "create", "acc-controls")
        site.cli("owner", "add", "acc-tools", "--group", "acc-controls")
        with server:
            yield site
    slapd.stop()


def sign_in(page: Page, site: Site, name: str, provider: str = "lab") -> None:
    """Through the provider's own pages: its login, then its consent the first time."""
    page.goto(site.server.url + "/admin/sign-in")
    page.get_by_role("link", name=f"Sign in with {provider}").click()
    page.wait_for_load_state()
    if page.url.startswith(site.provider.url) and page.locator("button#login").count():
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", PASSWORDS[name])
        page.click("button#login")
        page.wait_for_load_state()
    if page.url.startswith(site.provider.url) and page.locator("button#allow").count():
        page.click("button#allow")
    page.wait_for_url(re.compile(re.escape(site.server.url)))


def assert_signed_out(page: Page, site: Site) -> None:
    """No session here: the admin pages send this browser to the sign-in page."""
    page.goto(site.server.url + "/admin/account")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def test_a_person_signs_in_with_the_provider_and_manages_their_groups_project(
    page: Page, site: Site
) -> None:
    page.goto(site.server.url + "/admin/sign-in")
    screenshot(page, site.shots, "sso-sign-in")
    page.get_by_role("link", name="Sign in with lab").click()
    expect(page.locator("input[name=username]")).to_be_visible()  # the provider's page
    assert page.url.startswith(site.provider.url)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORDS["alice"])
    page.click("button#login")
    expect(page.locator("button#allow")).to_be_visible()  # consent, the first time
    page.click("button#allow")

    expect(page.get_by_role("heading", name="Hello, alice")).to_be_visible()
    page.goto(site.server.url + "/admin/account")
    whoami = page.locator("#whoami")
    # acc-controls from LDAP's "Accelerator Controls", team-beam from the ID token.
    expect(whoami).to_contain_text("acc-controls")
    expect(whoami).to_contain_text("team-beam")
    expect(whoami).not_to_contain_text("administrator")
    screenshot(page, site.shots, "sso-account")
    page.goto(site.server.url + "/admin/project/acc-tools/")
    expect(page.get_by_role("heading", name=re.compile("acc-tools"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Yank", re.IGNORECASE)).first).to_be_visible()
    # A token for twine and pip, made on the account page by the signed-in person.
    page.goto(site.server.url + "/admin/account")
    page.fill("#description", "laptop")
    page.fill("#expires_days", "30")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    answer = httpx.get(
        site.server.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
    assert answer.json()["name"] == "alice"


def test_the_directory_admins_group_makes_admins(page: Page, site: Site) -> None:
    sign_in(page, site, "bob")
    page.goto(site.server.url + "/admin/users")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()


def test_groups_follow_the_directory_at_the_next_sign_in(page: Page, site: Site) -> None:
    site.slapd.set_groups("alice", [])
    site.provider.set_groups("alice", ["team-rf"])
    try:
        sign_in(page, site, "alice")
        page.goto(site.server.url + "/admin/account")
        whoami = page.locator("#whoami")
        expect(whoami).to_contain_text("team-rf")
        expect(whoami).not_to_contain_text("acc-controls")
        expect(whoami).not_to_contain_text("team-beam")
        response = page.goto(site.server.url + "/admin/project/acc-tools/")
        assert response is not None
        assert response.status == 403
    finally:
        site.slapd.set_groups("alice", ["Accelerator Controls"])
        site.provider.set_groups("alice", ["team-beam"])


def test_the_scheduled_refresh_follows_a_group_change_without_a_sign_in(site: Site) -> None:
    site.slapd.set_groups("alice", ["Accelerator Controls", "team-cryo"])
    try:
        deadline = time.monotonic() + 30
        while "alice" not in group_members(site, "team-cryo"):
            assert time.monotonic() < deadline, "the refresh did not add alice to team-cryo"
            time.sleep(0.5)
    finally:
        site.slapd.set_groups("alice", ["Accelerator Controls"])
    deadline = time.monotonic() + 30
    while "alice" in group_members(site, "team-cryo"):
        assert time.monotonic() < deadline, "the refresh did not take alice out of team-cryo"
        time.sleep(0.5)


def group_members(site: Site, group: str) -> str:
    """The members `packyard group list` shows for `group` ("" if it has none)."""
    for line in site.cli("group", "list").splitlines():
        if line.split() and line.split()[0] == group:
            return line
    return ""


def test_a_person_the_directory_drops_is_disabled_and_their_project_handed_over(
    page: Page, site: Site
) -> None:
    sign_in(page, site, "carol")
    site.cli("owner", "add", "carol-notes", "--user", "carol")
    token = site.cli("token", "create", "carol").strip().splitlines()[-1]
    whoami = site.server.url + "/api/v1/whoami"
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(whoami, headers=bearer).status_code == 200

    site.slapd.remove_user("carol")

    deadline = time.monotonic() + 30
    while httpx.get(whoami, headers=bearer).status_code == 200:
        assert time.monotonic() < deadline, "the refresh did not disable carol"
        time.sleep(0.5)
    owners = site.cli("owner", "list", "carol-notes")
    assert re.search(r"owner\s+user\s+bob", owners), owners  # carol's manager in LDAP
    # Bob is told: a notice on his account page, and the audit trail has it. (His
    # own browser: this one is still signed in at the provider as carol.)
    browser = page.context.browser
    assert browser is not None
    bobs = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(bobs, site, "bob")
    bobs.goto(site.server.url + "/admin/account")
    notices = bobs.get_by_role("region", name="Projects handed to you")
    expect(notices).to_contain_text("carol-notes")
    expect(notices).to_contain_text("carol")
    screenshot(bobs, site.shots, "sso-handover-notice")
    bobs.goto(site.server.url + "/admin/audit")
    expect(bobs.locator("body")).to_contain_text("project-handover")
    bobs.context.close()
    # Carol, still signed in at the provider, is refused here.
    sign_in(page, site, "carol")
    expect(page.get_by_role("alert")).to_contain_text("not in the organisation's directory")


def test_an_answer_not_started_here_is_refused(page: Page, site: Site) -> None:
    response = page.goto(site.server.url + "/admin/sso/lab/callback?code=stolen&state=forged")
    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("not started in this browser")


def test_a_provider_that_is_down_gets_a_page_saying_so(page: Page, site: Site) -> None:
    site.provider.stop()
    try:
        page.goto(site.server.url + "/admin/sign-in")
        page.get_by_role("link", name="Sign in with lab").click()
        expect(page.get_by_role("alert")).to_contain_text("not possible right now")
        # The password form is still there for local accounts.
        expect(page.locator("#password")).to_be_visible()
    finally:
        site.provider.start()


def test_a_person_outside_the_directory_is_refused(page: Page, site: Site) -> None:
    sign_in(page, site, "mallory")  # known to the provider, but not in LDAP
    expect(page.get_by_role("alert")).to_contain_text("not in the organisation's directory")
    assert_signed_out(page, site)


def test_a_declined_consent_is_refused(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/admin/sign-in")
    page.get_by_role("link", name="Sign in with lab").click()
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password]", PASSWORDS["dora"])
    page.click("button#login")
    page.click("button#decline")
    expect(page.get_by_role("alert")).to_contain_text("lab did not sign you in")
    assert_signed_out(page, site)


def test_a_provider_that_does_not_name_the_person_is_refused(page: Page, site: Site) -> None:
    sign_in(page, site, "alice", provider="nameless")
    expect(page.get_by_role("alert")).to_contain_text("did not say who you are")


def test_a_directory_that_does_not_answer_costs_a_bounded_wait(page: Page, site: Site) -> None:
    site.slapd.pause()
    try:
        started = time.monotonic()
        sign_in(page, site, "alice")
        assert time.monotonic() - started < 15
        expect(page.get_by_role("heading", name="Hello, alice")).to_be_visible()
        expect(page.locator("body")).to_contain_text("directory could not be asked")
        page.goto(site.server.url + "/admin/account")
        expect(page.locator("#whoami")).to_contain_text("acc-controls")  # kept from before
        expect(page.locator("#directory")).to_contain_text("stale")
    finally:
        site.slapd.resume()
