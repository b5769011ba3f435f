"""The lifecycle of a name, and of accounts, through the command line, the API and the pages.

An upstream packyard publishes `requests` and `public-lib`; the site under
test proxies it. Each lifecycle operation is done three times, once per way
in: `packyard …` on the site's store, the admin API of the running site
(httpx), and the admin pages in Chromium (Debian's, via Playwright). After
each, what clients see is checked on the running site, and the audit log.

The site's config sets `failed_credential_cache_seconds = 0`, so that a token
refused while its user was disabled works at once when they are enabled
again (by default that takes up to 30 s, docs/configuration.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import build_wheel, metadata_text
from tests.e2e.chromium import screenshot
from tests.e2e.servers import PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

ROOT_PASSWORD = "root-secret-pw"
MAX_FILE_SIZE = 20_000
PROJECTS = ("acme-cli-way", "acme-api-way", "acme-page-way")


@dataclass(frozen=True)
class Site:
    upstream: PackyardProcess
    server: PackyardProcess
    root: Path
    admin_token: str

    @property
    def api(self) -> str:
        return self.server.url + "/api/v1"

    def cli(self, *args: str, input: str | None = None, ok: bool = True) -> str:
        """`packyard ARGS` on the site's store; stdout + stderr (checked when `ok`)."""
        env = clean_environment(**self.server.environment)
        result = packyard(*args, "--data-dir", str(self.server.data_dir), env=env, input=input)
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def page_of(self, name: str) -> int:
        """The status of `/simple/NAME/` on the site, and so who owns the name."""
        return httpx.get(f"{self.server.index_url}{name}/").status_code

    def versions(self, name: str) -> list[str]:
        page = httpx.get(
            f"{self.server.index_url}{name}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        assert page.status_code == 200, page.text
        return list(page.json()["versions"])

    def audit(self, action: str) -> list[tuple[str, str, str | None, dict[str, object]]]:
        """(actor, outcome, project, detail) of every `action` event, oldest first."""
        with sqlite3.connect(self.server.data_dir / "packyard.db") as db:
            rows = db.execute(
                "SELECT actor, outcome, project_name, detail FROM audit_events "
                "WHERE action = ? ORDER BY id",
                (action,),
            ).fetchall()
        return [(a, o, p, json.loads(d)) for a, o, p, d in rows]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("lifecycle")
    public, ours = root / "public", root / "ours"
    public.mkdir()
    ours.mkdir()
    build_wheel(public, "requests", "2.32.0")
    build_wheel(public, "public-lib", "1.0")
    for name in PROJECTS:
        build_wheel(ours, name, "1.0")
        build_wheel(ours, name, "1.1")
    upstream = PackyardProcess(root / "upstream-data")
    assert upstream.import_dir(public).returncode == 0
    config = root / "packyard.toml"
    config.write_text(
        f"[upload]\nmax_file_size = {MAX_FILE_SIZE}\n[auth]\nfailed_credential_cache_seconds = 0\n"
    )
    server = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    server.environment["PACKYARD_CONFIG"] = str(config)
    with upstream:
        imported = server.import_dir(ours, upstreams=[upstream.index_url])
        assert imported.returncode == 0, imported.stdout + imported.stderr
        site = Site(upstream, server, root, "")
        site.cli("user", "add", "root", "--admin", "--password-stdin", input=ROOT_PASSWORD + "\n")
        for name in ("alice", "bob", "carol"):
            site.cli("user", "add", name, "--password-stdin", input=f"{name}-first-pw\n")
        token = site.cli("token", "create", "root").strip().splitlines()[-1]
        with server:
            yield Site(upstream, server, root, token)


def sign_in(page: Page, site: Site) -> None:
    page.goto(site.server.url + "/admin/sign-in")
    page.fill("#username", "root")
    page.fill("#password", ROOT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello, root")).to_be_visible()


def whoami(site: Site, auth: httpx.Auth | tuple[str, str] | None = None) -> httpx.Response:
    return httpx.get(site.api + "/whoami", auth=auth)


# --- commands that find no store -------------------------------------------------------


def test_no_command_but_init_serve_and_migrate_creates_a_store(tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-store"
    for command in (["user", "list"], ["user", "add", "alice"], ["import", str(tmp_path)]):
        refused = packyard(*command, "--data-dir", str(elsewhere))
        assert refused.returncode == 1, refused.stdout
        assert f"There is no packyard store at {elsewhere} (database sqlite:///" in refused.stderr
        assert "`packyard init`" in refused.stderr
        assert not elsewhere.exists()
    created = packyard("init", "--data-dir", str(elsewhere))
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"Created a new store: the store at {elsewhere} (database")
    again = packyard("init", "--data-dir", str(elsewhere))
    assert "There is a store already" in again.stdout
    empty = packyard("user", "list", "--data-dir", str(elsewhere))
    assert (
        empty.stdout
        == f"No users in the store at {elsewhere} (database sqlite:///"
        + str(elsewhere / "packyard.db")
        + ").\n"
    )


def test_something_not_found_names_the_store_it_was_looked_for_in(site: Site) -> None:
    missing = site.cli("user", "disable", "nobody", ok=False)
    assert missing.startswith("error: There is no user named 'nobody'. Looked in the store at ")
    assert str(site.server.data_dir) in missing


# --- import under the upload's rules ---------------------------------------------------


def test_import_refuses_what_an_upload_refuses_and_says_why_per_file(site: Site) -> None:
    dists = site.root / "handed-over"
    dists.mkdir()
    build_wheel(dists, "public-lib", "9.9")  # a public project's name
    noise = {"acme_big/noise.bin": os.urandom(2 * MAX_FILE_SIZE)}  # does not compress
    too_large = build_wheel(dists, "acme-big", "1.0", extra_files=noise)
    bad = metadata_text("acme-bad", "1.0") + "Classifier: Made Up :: Nonsense\n"
    build_wheel(dists, "acme-bad", "1.0", metadata=bad)
    build_wheel(dists, "acme-good", "1.0")

    output = site.cli(
        "import", "--upstream", site.upstream.index_url, "--owner", "alice", str(dists), ok=False
    )

    refused = {
        line.split(": ", 2)[1]: line.split(": ", 2)[2]
        for line in output.splitlines()
        if line.startswith("refused: ")
    }
    assert refused.keys() == {
        "public_lib-9.9-py3-none-any.whl",
        too_large.name,
        "acme_bad-1.0-py3-none-any.whl",
    }
    assert "already used by a public project" in refused["public_lib-9.9-py3-none-any.whl"]
    assert refused[too_large.name].startswith("File too large. Limit for project 'acme-big'")
    assert (
        "'Made Up :: Nonsense' is not a valid classifier"
        in refused["acme_bad-1.0-py3-none-any.whl"]
    )
    assert output.startswith("1 added, 0 already present, 3 refused\n")  # stdout first
    assert site.page_of("public-lib") == 200  # still the upstream's
    assert site.versions("public-lib") == ["1.0"]
    assert site.cli("owner", "list", "acme-good").splitlines()[1].split()[:3] == [
        "owner",
        "user",
        "alice",
    ]
    logged = {(outcome, project) for _, outcome, project, _ in site.audit("import")}
    assert {("refused", "public-lib"), ("refused", "acme-big"), ("ok", "acme-good")} <= logged


def test_a_public_name_imported_on_purpose_hides_the_public_project_until_released(
    site: Site,
) -> None:
    dists = site.root / "fork"
    dists.mkdir()
    build_wheel(dists, "requests", "99.0")
    assert site.versions("requests") == ["2.32.0"]

    output = site.cli(
        "import", "--upstream", site.upstream.index_url, "--allow-public-names", str(dists)
    )
    assert "warning: requests-99.0-py3-none-any.whl: imported with --allow-public-names" in output
    assert site.versions("requests") == ["99.0"]  # the public one is hidden now
    ((actor, _, project, detail),) = site.audit("name-guard-override")
    assert (actor.startswith("cli:"), project) == (True, "requests")
    assert "already used by a public project" in str(detail["reason"])

    # Its only release deleted, the empty project hides nothing: an admin did not say so.
    site.cli("delete", "requests", "99.0", "--yes")
    assert site.versions("requests") == ["2.32.0"]
    # Unless an admin keeps the name in-house.
    site.cli("name", "allow", "requests", "--reason", "we will publish our fork again")
    assert site.versions("requests") == []
    released = site.cli("name", "release", "requests", "--yes")
    assert released.strip() == (
        "Released 'requests' to the upstream: its in-house project deleted (0 files) "
        "and taken off the allow-list."
    )
    assert site.versions("requests") == ["2.32.0"]
    assert site.cli("name", "list", ok=True).startswith("No allowed names in the store at")


# --- delete a project ---------------------------------------------------------------


def assert_deleted_for_good(site: Site, name: str) -> None:
    assert site.page_of(name) == 404
    wheel = f"{name.replace('-', '_')}-1.0-py3-none-any.whl"
    assert httpx.get(f"{site.server.url}/files/{name}/{wheel}").status_code == 404
    again = site.root / f"again-{name}"
    again.mkdir()
    build_wheel(again, name, "1.0")
    output = site.cli("import", "--upstream", "none", str(again), ok=False)
    assert "previously used by a file that has since been deleted" in output
    (event,) = [e for e in site.audit("project-delete") if e[2] == name and e[1] == "ok"]
    files = event[3]["files"]
    assert isinstance(files, list)
    assert sorted(files) == [wheel, wheel.replace("-1.0-", "-1.1-")]


def test_delete_a_project_from_the_command_line(site: Site) -> None:
    name = PROJECTS[0]
    declined = site.cli("project", "delete", name, input="n\n", ok=False)
    assert "Aborted" in declined
    assert site.page_of(name) == 200
    done = site.cli("project", "delete", name, "--yes")
    assert done.startswith(f"deleted the project {name} (")
    assert_deleted_for_good(site, name)


def test_delete_a_project_through_the_api(site: Site) -> None:
    name = PROJECTS[1]
    bob_token = site.cli("token", "create", "bob").strip().splitlines()[-1]
    bob = httpx.delete(f"{site.api}/projects/{name}", auth=("__token__", bob_token))
    assert bob.status_code == 403
    assert "only an admin" in bob.json()["detail"]
    missing = httpx.delete(f"{site.api}/projects/no-such-project", headers=site.admin())
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Project 'no-such-project' was not found."}

    done = httpx.delete(f"{site.api}/projects/{name}", headers=site.admin())

    assert done.status_code == 200, done.text
    assert done.json()["project"] == name
    assert len(done.json()["deleted_files"]) == 2
    assert_deleted_for_good(site, name)
    refused = [e for e in site.audit("project-delete") if e[1] == "refused"]
    assert [(actor, project) for actor, _, project, _ in refused] == [
        (f"token:bob/{bob_token[:12]}", name)
    ]


def test_delete_a_project_on_its_admin_page(page: Page, site: Site) -> None:
    name = PROJECTS[2]
    sign_in(page, site)
    page.goto(f"{site.server.url}/admin/project/{name}/")
    page.get_by_role("link", name="Delete the project…").click()
    expect(page.get_by_role("heading", name=f"Delete the project {name}")).to_be_visible()
    expect(page.locator("li code")).to_have_count(2)
    screenshot(page, site.root / "shots", "admin-delete-project")
    page.fill("#confirm", "not-the-name")
    page.get_by_role("button", name="Delete the project for good").click()
    expect(page.get_by_role("status")).to_contain_text(f"Type '{name}' exactly")
    assert site.page_of(name) == 200
    page.fill("#confirm", name)
    page.get_by_role("button", name="Delete the project for good").click()
    expect(page.get_by_role("status")).to_have_text(f"Deleted the project {name} (2 files).")
    expect(page.get_by_role("heading", name="Deletions")).to_be_visible()
    assert_deleted_for_good(site, name)


# --- release a name ----------------------------------------------------------------


def test_release_a_name_through_the_api_and_on_the_names_page(page: Page, site: Site) -> None:
    for name in ("public-lib", "requests"):
        site.cli("name", "allow", name)
    assert site.page_of("requests") == 200

    released = httpx.post(f"{site.api}/names/public-lib/release", headers=site.admin())
    assert released.status_code == 200, released.text
    assert released.json() == {
        "name": "public-lib",
        "deleted_files": [],
        "project_deleted": False,
        "was_allowed": True,
    }
    again = httpx.post(f"{site.api}/names/public-lib/release", headers=site.admin())
    assert again.status_code == 404
    assert "is not in-house" in again.json()["detail"]

    sign_in(page, site)
    page.goto(site.server.url + "/admin/names")
    page.get_by_role("link", name="Release requests…").click()
    expect(page.get_by_role("heading", name="Release requests to the upstream")).to_be_visible()
    page.fill("#confirm", "requests")
    page.get_by_role("button", name="Release the name").click()
    expect(page.get_by_role("status")).to_have_text(
        "Released 'requests' to the upstream: taken off the allow-list."
    )
    expect(page.locator("td code", has_text="requests")).to_have_count(0)
    releases = [(o, p) for _, o, p, _ in site.audit("name-release")]
    assert ("ok", "public-lib") in releases
    assert ("ok", "requests") in releases


# --- users: enable, reset a password ---------------------------------------------------


def test_enable_a_user_and_reset_a_password_from_the_command_line(site: Site) -> None:
    site.cli("user", "disable", "alice")
    assert whoami(site, ("alice", "alice-first-pw")).status_code == 401
    assert site.cli("user", "enable", "alice").strip() == "Enabled user 'alice'."
    assert whoami(site, ("alice", "alice-first-pw")).json()["name"] == "alice"

    site.cli("user", "password", "alice", "--password-stdin", input="alice-second-pw\n")
    assert whoami(site, ("alice", "alice-second-pw")).status_code == 200
    assert whoami(site, ("alice", "alice-first-pw")).status_code == 401
    assert [e[3] for e in site.audit("user-password-reset")][:1] == [{"user": "alice"}]


def test_enable_a_user_and_reset_a_password_through_the_api(site: Site) -> None:
    site.cli("user", "disable", "bob")
    enabled = httpx.post(f"{site.api}/users/bob/enable", headers=site.admin())
    assert enabled.status_code == 204
    twice = httpx.post(f"{site.api}/users/bob/enable", headers=site.admin())
    assert twice.status_code == 409
    assert twice.json() == {"detail": "The user 'bob' is not disabled."}
    short = httpx.put(
        f"{site.api}/users/bob/password", json={"password": "short"}, headers=site.admin()
    )
    assert short.status_code == 400
    reset = httpx.put(
        f"{site.api}/users/bob/password", json={"password": "bob-second-pw"}, headers=site.admin()
    )
    assert reset.status_code == 204
    assert whoami(site, ("bob", "bob-second-pw")).status_code == 200
    by_bob = httpx.post(f"{site.api}/users/carol/enable", auth=("bob", "bob-second-pw"))
    assert by_bob.status_code == 403


def test_enable_a_user_and_reset_a_password_on_the_users_page(page: Page, site: Site) -> None:
    site.cli("user", "disable", "carol")
    sign_in(page, site)
    page.goto(site.server.url + "/admin/users")
    page.get_by_role("button", name="Enable carol").click()
    expect(page.get_by_role("status")).to_have_text("Enabled the user 'carol'.")
    page.get_by_label("New password for carol").fill("carol-second-pw")
    page.get_by_role("button", name="Reset password of carol").click()
    expect(page.get_by_role("status")).to_have_text("Set a new password for the user 'carol'.")
    screenshot(page, site.root / "shots", "admin-users")
    assert whoami(site, ("carol", "carol-second-pw")).status_code == 200
    assert whoami(site, ("carol", "carol-first-pw")).status_code == 401


# --- groups: delete --------------------------------------------------------------------


def test_delete_a_group_from_the_command_line_the_api_and_the_groups_page(
    page: Page, site: Site
) -> None:
    dists = site.root / "owned"
    dists.mkdir()
    build_wheel(dists, "acme-owned", "1.0")
    for group in ("cli-group", "api-group", "page-group"):
        site.cli("group", "create", group)
    site.cli("group", "add", "cli-group", "alice")
    site.cli("import", "--upstream", "none", "--owner", "group:cli-group", str(dists))

    deleted = site.cli("group", "delete", "cli-group")
    assert deleted.splitlines() == [
        "Deleted group 'cli-group'.",
        "These projects have no owner now (`packyard owner add PROJECT --user NAME`): acme-owned",
    ]
    assert "acme-owned" in site.cli("owner", "orphaned")

    api = httpx.delete(f"{site.api}/groups/api-group", headers=site.admin())
    assert api.json() == {"name": "api-group", "orphaned_projects": []}
    assert httpx.delete(f"{site.api}/groups/api-group", headers=site.admin()).status_code == 404

    sign_in(page, site)
    page.goto(site.server.url + "/admin/groups")
    page.get_by_role("button", name="Delete group page-group").click()
    expect(page.get_by_role("status")).to_have_text("Deleted the group 'page-group'.")
    expect(page.locator("tr[data-group]")).to_have_count(0)
    assert [e[3]["group"] for e in site.audit("group-delete")] == [
        "cli-group",
        "api-group",
        "page-group",
    ]


# --- whoami ----------------------------------------------------------------------------


def test_whoami_from_the_command_line_the_api_and_the_account_page(page: Page, site: Site) -> None:
    said = site.cli("whoami")
    assert "every command acts as an administrator" in said
    assert f"Store: the store at {site.server.data_dir} (database sqlite:///" in said

    me = whoami(site, httpx.BasicAuth("__token__", site.admin_token))
    assert me.status_code == 200
    assert me.json() | {"token": "-"} == {
        "name": "root",
        "kind": "token",
        "actor": f"token:root/{me.json()['token']}",
        "is_admin": True,
        "groups": [],
        "token": "-",
        "projects": None,
    }
    assert whoami(site).status_code == 401
    assert whoami(site).headers["www-authenticate"] == 'Basic realm="packyard"'

    sign_in(page, site)
    page.goto(site.server.url + "/admin/account")
    expect(page.locator("#whoami")).to_have_text("Signed in as root, an administrator.")
