"""Every admin form not driven elsewhere, in a real browser against a real server.

Debian's Chromium (Playwright) signs in to one `packyard serve` process as an
admin made with `packyard user add root --password-stdin --admin`, submits
each form as a person would, reads the page's status message, and checks the
change another way: the admin API (`/api/v1/…` with root's token), the simple
index, an upload, or the audit log. The site proxies a second packyard process (the
upstream, 127.0.0.1 only) named `upstream` in its configuration file, for the
allow-list of public names and the cool-down forms.

Covered elsewhere: yank a file, create a token, sign out (test_browser_admin.py);
delete a project, release a name, enable a user, reset a password, delete a
group (test_name_lifecycle.py); allow/deny rules (test_policy_pages.py).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.builders import build_wheel
from tests.e2e.clients import post_upload
from tests.e2e.servers import PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

ROOT_PASSWORD = "root-secret-pw"
PASSWORDS = {name: f"{name}-secret-pw" for name in ("dave", "erin", "nina", "olga")}
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
TOOLS_10 = "acme_tools-1.0-py3-none-any.whl"
DOOMED_10 = "acme_doomed-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class Site:
    server: PackyardProcess
    token: str  # root's API token, made with `packyard token create root`

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.url + "/api/v1" + path, headers=headers, **kwargs)

    def get(self, path: str) -> Any:
        response = self.api("GET", path)
        assert response.status_code == 200, response.text
        return response.json()

    def files(self, project: str) -> dict[str, dict[str, Any]]:
        """The simple index's (PEP 691) files of `project`, by file name."""
        page = httpx.get(f"{self.url}/simple/{project}/", headers=SIMPLE_JSON)
        assert page.status_code == 200, page.text
        return {f["filename"]: f for f in page.json()["files"]}

    def upload(self, wheel: Path) -> httpx.Response:
        """`wheel` uploaded to `/legacy/` as twine does, with root's token."""
        return post_upload(self.url + "/legacy/", wheel, ("__token__", self.token))

    def audit(self, action: str) -> list[dict[str, Any]]:
        """The `action` events of the audit log (`/api/v1/audit`), newest first."""
        return list(self.get(f"/audit?action={action}&limit=500")["events"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("admin-forms")
    public, ours = root / "public", root / "ours"
    public.mkdir()
    ours.mkdir()
    build_wheel(public, "public-lib", "1.0")
    build_wheel(public, "shared-name", "1.0")
    for name, versions in {
        "acme-tools": ("1.0", "1.1"),
        "acme-handed": ("1.0",),
        "acme-doomed": ("1.0", "1.1"),
    }.items():
        for version in versions:
            build_wheel(ours, name, version)

    upstream = PackyardProcess(root / "upstream-data")
    assert upstream.import_dir(public).returncode == 0
    config = root / "packyard.toml"
    config.write_text(
        f'[[upstreams]]\nurl = "{upstream.index_url}"\nname = "upstream"\n'
        # A disabled user's or a revoked token's next request is refused at once.
        "[auth]\ncredential_cache_seconds = 0\nfailed_credential_cache_seconds = 0\n"
    )
    server = PackyardProcess(root / "site-data", upstreams=())
    server.environment["PACKYARD_CONFIG"] = str(config)
    imported = server.import_dir(ours)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    env = clean_environment(**server.environment)
    state = ["--data-dir", str(server.data_dir)]
    added = packyard(
        "user", "add", "root", "--password-stdin", "--admin", *state, input=ROOT_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stdout + added.stderr
    made = packyard("token", "create", "root", *state, env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    with upstream, server:
        site = Site(server, made.stdout.strip().splitlines()[-1])
        for name, password in PASSWORDS.items():
            user = site.api("POST", "/users", json={"name": name, "password": password})
            assert user.status_code == 201, user.text
        for method, path, body in (
            ("POST", "/projects/acme-handed/roles", {"role": "owner", "user": "dave"}),
            ("POST", "/groups", {"name": "maintainers"}),
            ("POST", "/groups/maintainers/members", {"user": "nina"}),
        ):
            done = site.api(method, path, json=body)
            assert done.status_code in (201, 204), done.text
        yield site


def sign_in(page: Page, site: Site, name: str = "root", password: str = ROOT_PASSWORD) -> None:
    page.goto(site.url + "/admin/sign-in")
    page.fill("#username", name)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Hello, {name}")).to_be_visible()


def status(page: Page, text: str) -> None:
    expect(page.get_by_role("status")).to_have_text(text)


def user_row(page: Page, name: str) -> Locator:
    """The users page's row of `name` (its first cell holds only the name)."""
    first = page.locator("td:first-child", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
    return page.locator("tbody tr", has=first)


def whoami(site: Site, auth: tuple[str, str]) -> int:
    return httpx.get(site.url + "/api/v1/whoami", auth=auth).status_code


def test_users_groups_tokens_and_hand_over_notices(page: Page, site: Site) -> None:
    sign_in(page, site)

    # Add a user.
    page.goto(site.url + "/admin/users")
    page.fill("#name", "Frank")
    page.fill("#password", "frank-secret-pw")
    page.get_by_role("button", name="Add user").click()
    status(page, "Added the user 'frank'.")
    frank = next(u for u in site.get("/users") if u["name"] == "frank")
    assert (frank["is_admin"], frank["disabled"], frank["has_password"]) == (False, False, True)
    assert whoami(site, ("frank", "frank-secret-pw")) == 200

    # Disable a user: their password stops working at once.
    assert whoami(site, ("erin", PASSWORDS["erin"])) == 200
    user_row(page, "erin").get_by_role("button", name="Disable").click()
    status(page, "Disabled the user 'erin'. No project was left without an owner.")
    expect(user_row(page, "erin").get_by_role("button", name="Enable erin")).to_be_visible()
    assert next(u for u in site.get("/users") if u["name"] == "erin")["disabled"] is True
    assert whoami(site, ("erin", PASSWORDS["erin"])) == 401

    # Retire a user, handing their project to root; root is told on "My account".
    user_row(page, "dave").get_by_label("Successor of dave").fill("root")
    page.get_by_role("button", name="Retire dave…").click()
    status(page, "Retired the user 'dave'. Handed over: acme-handed to root.")
    assert next(u for u in site.get("/users") if u["name"] == "dave")["disabled"] is True
    roles = site.get("/projects/acme-handed/roles")
    assert [(r["role"], r["kind"], r["name"]) for r in roles if not r["disabled"]] == [
        ("owner", "user", "root")
    ]
    (retired, *_) = site.audit("user-retire")
    assert (retired["actor"], retired["outcome"]) == ("user:root", "ok")

    # Dismiss the notice of that hand-over.
    page.goto(site.url + "/admin/account")
    expect(page.get_by_role("heading", name="Projects handed to you")).to_be_visible()
    page.get_by_role("button", name="Dismiss the notice of acme-handed").click()
    status(page, "The notice is dismissed.")
    expect(page.get_by_role("heading", name="Projects handed to you")).to_have_count(0)
    with sqlite3.connect(site.server.data_dir / "packyard.db") as db:
        seen = db.execute(
            "SELECT seen_at FROM handovers WHERE project_name = 'acme-handed'"
        ).fetchall()
    assert [at is not None for (at,) in seen] == [True]

    # Revoke a token: it stops working at once.
    made = site.api("POST", "/tokens", json={"description": "to revoke"})
    assert made.status_code == 201, made.text
    secret, prefix, number = made.json()["token"], made.json()["prefix"], made.json()["id"]
    assert whoami(site, ("__token__", secret)) == 200
    page.reload()
    row = page.locator("tbody tr", has=page.get_by_role("cell", name="to revoke", exact=True))
    row.get_by_role("button", name="Revoke").click()
    status(page, f"The token {prefix}… is revoked.")
    expect(row).to_contain_text("revoked")
    assert next(t for t in site.get("/tokens") if t["id"] == number)["revoked_at"] is not None
    assert whoami(site, ("__token__", secret)) == 401

    # Create a group, add two members, take one out again.
    page.goto(site.url + "/admin/groups")
    page.fill("#name", "team")
    page.get_by_role("button", name="Create group").click()
    status(page, "Created the group 'team'.")
    team = page.locator('tr[data-group="team"]')
    for member in ("nina", "frank"):
        team.get_by_label("Add a member to team").select_option(member)
        team.get_by_role("button", name="Add", exact=True).click()
        status(page, f"Added '{member}' to the group 'team'.")
    members = {g["name"]: g["members"] for g in site.get("/groups")}
    assert sorted(members["team"]) == ["frank", "nina"]
    page.get_by_role("button", name="Remove frank from team").click()
    status(page, "Took 'frank' out of the group 'team'.")
    assert {g["name"]: g["members"] for g in site.get("/groups")}["team"] == ["nina"]
    (removed, *_) = site.audit("group-member-remove")
    assert removed["detail"] == {"group": "team", "user": "frank"}


def test_roles_yanks_attestations_deletion_and_my_projects(page: Page, site: Site) -> None:
    sign_in(page, site)
    page.goto(site.url + "/admin/project/acme-tools/")
    expect(page.get_by_role("heading", name="Manage acme-tools")).to_be_visible()

    def roles() -> set[tuple[str, str, str]]:
        found = site.get("/projects/acme-tools/roles")
        return {(r["role"], r["kind"], r["name"]) for r in found}

    # Owners and maintainers: add a group and a user, remove the user.
    for role, kind, member in (("maintainer", "group", "maintainers"), ("owner", "user", "olga")):
        page.get_by_label("Role", exact=True).select_option(role)
        page.get_by_label("Kind", exact=True).select_option(kind)
        page.get_by_label("Name", exact=True).fill(member)
        page.get_by_role("button", name="Add", exact=True).click()
        status(page, f"The {kind} '{member}' is now {role}.")
    assert roles() == {("maintainer", "group", "maintainers"), ("owner", "user", "olga")}
    olga = page.locator("#roles tbody tr", has_text="user olga")
    olga.get_by_role("button", name="Remove").click()
    status(page, "The user 'olga' has no role any more.")
    assert roles() == {("maintainer", "group", "maintainers")}

    # Yank a whole release with a reason, then un-yank it.
    page.get_by_label("Reason for yanking release 1.1").fill("Broken build")
    page.get_by_role("button", name="Yank release 1.1").click()
    status(page, "Yanked acme-tools 1.1.")
    assert site.files("acme-tools")["acme_tools-1.1-py3-none-any.whl"]["yanked"] == "Broken build"
    page.get_by_role("button", name="Un-yank release 1.1").click()
    status(page, "Un-yanked acme-tools 1.1.")
    assert site.files("acme-tools")["acme_tools-1.1-py3-none-any.whl"]["yanked"] is False

    # Un-yank one file (yanked through the API).
    yanked = site.api("PUT", f"/projects/acme-tools/releases/1.0/files/{TOOLS_10}/yank")
    assert yanked.status_code == 200, yanked.text
    assert site.files("acme-tools")[TOOLS_10]["yanked"] is not False
    page.reload()
    page.locator("summary", has_text="1.0").click()
    file_row = page.locator(f'li.admin-file[data-filename="{TOOLS_10}"]')
    file_row.get_by_role("button", name="Un-yank", exact=True).click()
    status(page, f"Un-yanked {TOOLS_10}.")
    assert site.files("acme-tools")[TOOLS_10]["yanked"] is False
    assert [e["filename"] for e in site.audit("unyank")][:2] == [TOOLS_10, None]

    # The project's own attestation requirement.
    page.get_by_label("Required for").select_option("ci")
    page.get_by_role("button", name="Save").click()
    status(page, "Attestations required: ci.")
    own = site.get("/attestation-requirements")["projects"]
    assert {"project": "acme-tools", "requirement": "ci", "own": True} in own

    # Delete one file from the deletions page: "Continue…", then the confirmation.
    page.goto(site.url + "/admin/deletions")
    page.get_by_label("Project", exact=True).fill("acme-doomed")
    page.get_by_label("Version", exact=True).fill("1.0")
    page.get_by_label("File name").fill(DOOMED_10)
    page.get_by_role("button", name="Continue…").click()
    expect(page.get_by_role("heading", name="Delete a file of acme-doomed")).to_be_visible()
    page.fill("#confirm", DOOMED_10)
    page.get_by_role("button", name="Delete for good").click()
    status(page, f"Deleted {DOOMED_10}.")
    assert list(site.files("acme-doomed")) == ["acme_doomed-1.1-py3-none-any.whl"]
    assert httpx.get(f"{site.url}/files/acme-doomed/{DOOMED_10}").status_code == 404
    (deleted, *_) = site.audit("delete")
    assert (deleted["project"], deleted["filename"], deleted["outcome"]) == (
        "acme-doomed",
        DOOMED_10,
        "ok",
    )

    # "My projects": nina, no admin, maintains acme-tools through her group.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, site, "nina", PASSWORDS["nina"])
    page.goto(site.url + "/admin/account")
    expect(page.locator(".my-projects li")).to_have_text(
        ["acme-tools: maintainer, through the group maintainers"]
    )
    page.get_by_role("link", name="acme-tools").click()
    expect(page.get_by_role("heading", name="Manage acme-tools")).to_be_visible()


def test_allowed_names_and_the_cool_down_of_the_upstream(
    page: Page, site: Site, tmp_path: Path
) -> None:
    def versions(project: str) -> list[str]:
        page = httpx.get(f"{site.url}/simple/{project}/", headers=SIMPLE_JSON)
        assert page.status_code == 200, page.text
        return list(page.json()["versions"])

    def policy() -> dict[str, Any]:
        (found,) = site.get("/policies")
        return dict(found)

    assert versions("shared-name") == ["1.0"]
    assert list(site.files("public-lib")) == ["public_lib-1.0-py3-none-any.whl"]
    sign_in(page, site)

    # Allow a public name: the (empty) in-house project hides the public one.
    page.goto(site.url + "/admin/names")
    page.fill("#name", "Shared_Name")
    page.get_by_label("Reason", exact=True).fill("our fork is coming")
    page.get_by_role("button", name="Allow", exact=True).click()
    status(page, "'shared-name' is allowed.")
    allowed = site.get("/names/allowed")
    assert [(n["name"], n["reason"], n["allowed_by"]) for n in allowed] == [
        ("shared-name", "our fork is coming", "user:root")
    ]

    # Off the list again: the name guard refuses an upload of that name.
    page.get_by_role("button", name="Disallow").click()
    status(page, "'shared-name' is no longer allowed.")
    expect(page.get_by_role("cell", name="No name is allowed.")).to_be_visible()
    assert site.get("/names/allowed") == []
    refused = site.upload(build_wheel(tmp_path, "shared-name", "2.0"))
    assert refused.status_code == 400, refused.text
    assert "already used by a public project" in refused.text
    assert versions("shared-name") == ["1.0"]

    # A cool-down set here hides the upstream's new files; an exemption lets one through.
    page.goto(site.url + "/admin/policies")
    card = page.get_by_role("region", name="upstream")
    card.get_by_label("Cool-down of upstream in days").fill("1")
    card.get_by_role("button", name="Set cool-down").click()
    status(page, "The cool-down of upstream is 1 days (set here).")
    assert (policy()["cooldown"]["days"], policy()["cooldown"]["origin"]) == (1, "database")
    assert site.files("public-lib") == {}

    card.get_by_label("Project to serve from upstream without the cool-down").fill("public-lib")
    card.get_by_label("Reason", exact=True).fill("fix for CVE-2026-0001")
    card.get_by_role("button", name="Exempt").click()
    status(page, "'public-lib' of upstream is exempted.")
    exemptions = policy()["cooldown_exemptions"]
    assert [(e["project"], e["reason"]) for e in exemptions] == [
        ("public-lib", "fix for CVE-2026-0001")
    ]
    assert list(site.files("public-lib")) == ["public_lib-1.0-py3-none-any.whl"]

    card.get_by_role(
        "button", name="Remove the exemption of public-lib from the cool-down of upstream"
    ).click()
    status(page, "'public-lib' of upstream waits for the cool-down again.")
    assert policy()["cooldown_exemptions"] == []
    assert site.files("public-lib") == {}

    card.get_by_role("button", name="Use the configured cool-down of upstream").click()
    status(page, "The cool-down of upstream is 0 days (the configured one).")
    assert (policy()["cooldown"]["days"], policy()["cooldown"]["origin"]) == (0, "config")
    assert list(site.files("public-lib")) == ["public_lib-1.0-py3-none-any.whl"]
    changes = [e["detail"] for e in site.audit("policy-cooldown")]
    assert len(changes) == 2, changes


def test_the_audit_filter_and_a_form_without_its_csrf_token(page: Page, site: Site) -> None:
    sign_in(page, site)

    # A form posted without its token is refused, and nothing changes.
    page.goto(site.url + "/admin/groups")
    form = page.locator("form", has=page.get_by_role("button", name="Create group"))
    form.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    page.fill("#name", "sneaky")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create group").click()
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator(".notice--error")).to_have_text(
        "The form's security token is missing or out of date: reload the page and try again."
    )
    assert "sneaky" not in {g["name"] for g in site.get("/groups")}
    assert not [e for e in site.audit("group-add") if e["detail"].get("group") == "sneaky"]

    # The audit log's filter: one action by root's tokens.
    made = site.api("POST", "/groups", json={"name": "probe"})
    assert made.status_code == 201, made.text
    page.goto(site.url + "/admin/audit")
    page.get_by_label("Actor", exact=True).fill("token:root/")
    page.get_by_label("Action", exact=True).select_option("group-add")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"actor=token%3Aroot%2F&action=group-add"))
    expected = [e for e in site.audit("group-add") if e["actor"].startswith("token:root/")]
    assert expected[0]["detail"] == {"group": "probe"}  # the newest
    rows = page.locator(".audit-table tbody tr")
    expect(rows).to_have_count(len(expected))
    expect(rows.locator("td:nth-child(3)")).to_have_text(["group-add"] * len(expected))
    expect(rows.first.locator(".audit-detail")).to_have_text("group: probe")
    count = f"{len(expected)} event{'' if len(expected) == 1 else 's'}, newest first."
    expect(page.get_by_text(count)).to_be_visible()
