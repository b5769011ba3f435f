"""My account, project admin and site admin pages, over SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from packyard.db.audit import AuditEvent
from packyard.db.governance import AllowedName, DeletedFile
from packyard.db.models import File
from packyard.publish import accounts
from tests.unit.ui.admin.conftest import OPERATOR, Admin, csrf_token, post_form, sign_in

pytestmark = pytest.mark.anyio
PROJECT = "/admin/project/acme-tools/"
WHEEL = "acme_tools-1.0-py3-none-any.whl"


def file_state(admin: Admin, filename: str) -> tuple[bool, str | None]:
    with admin.store.sessions() as session:
        row = session.scalars(select(File).where(File.filename == filename)).one()
        return row.yanked, row.yanked_reason


def audit(admin: Admin, action: str) -> list[AuditEvent]:
    with admin.store.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


async def test_token_is_shown_once_and_listed_without_its_secret(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        response = await post_form(
            client,
            "/admin/account",
            "/admin/account/tokens",
            {"description": "<b>ci</b>", "projects": "acme-tools", "expires_days": "30"},
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        token = re.search(r'<code class="token" id="new-token">(pky_[^<]+)</code>', response.text)
        assert token is not None
        listing = await client.get("/admin/account")
        assert token.group(1) not in listing.text
        assert token.group(1)[:12] + "…" in listing.text
        assert "&lt;b&gt;ci&lt;/b&gt;" in listing.text  # escaped
    with admin.store.sessions() as session:
        (summary,) = accounts.list_tokens(session, "alice")
    assert summary.projects == ("acme-tools",)
    assert summary.expires_at is not None


async def test_revoke_only_my_own_tokens(admin: Admin) -> None:
    with admin.store.sessions.begin() as session:
        _, bobs = accounts.create_token(session, "bob", actor=OPERATOR)
        session.flush()
        bobs_id = bobs.id
    async with admin.client() as client:
        await sign_in(client, "alice")
        await post_form(client, "/admin/account", "/admin/account/tokens", {})
        with admin.store.sessions() as session:
            (mine,) = accounts.list_tokens(session, "alice")
        theirs = await post_form(
            client, "/admin/account", f"/admin/account/tokens/{bobs_id}/revoke", {}
        )
        assert theirs.status_code == 303
        assert "You have no such token." in (await client.get(theirs.headers["location"])).text
        ok = await post_form(
            client, "/admin/account", f"/admin/account/tokens/{mine.id}/revoke", {}
        )
        assert ok.status_code == 303
    with admin.store.sessions() as session:
        revoked = {t.user: t.revoked_at is not None for t in accounts.list_tokens(session)}
    assert revoked == {"alice": True, "bob": False}


async def test_maintainer_yanks_a_file_with_a_reason_and_unyanks_it(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "bob")  # maintainer through the group devs
        page = await client.get(PROJECT)
        assert page.status_code == 200
        assert WHEEL in page.text
        assert "roles/remove" not in page.text  # maintainers do not manage roles
        assert "Delete…" not in page.text  # nor delete
        response = await post_form(
            client,
            PROJECT,
            PROJECT + "yank",
            {"version": "1.0", "filename": WHEEL, "reason": "<broken> build"},
        )
        assert response.status_code == 303
        assert response.headers["location"] == PROJECT
        assert file_state(admin, WHEEL) == (True, "<broken> build")
        shown = await client.get(PROJECT)
        assert f"Yanked {WHEEL}." in shown.text
        assert "Reason: &lt;broken&gt; build" in shown.text
        assert f"Yanked {WHEEL}." not in (await client.get(PROJECT)).text  # shown once
        simple = await client.get("/simple/acme-tools/")
        assert 'data-yanked="&lt;broken&gt; build"' in simple.text
        await post_form(client, PROJECT, PROJECT + "unyank", {"version": "1.0", "filename": WHEEL})
        assert file_state(admin, WHEEL) == (False, None)
    (event,) = audit(admin, "yank")
    assert event.actor == "user:bob"
    assert event.outcome == "ok"


async def test_non_owner_cannot_yank(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "carol")
        assert (await client.get(PROJECT)).status_code == 403
        token = await csrf_token(client, "/admin/account")
        form = {"csrf_token": token, "version": "1.0", "filename": WHEEL, "reason": "mine"}
        response = await client.post(PROJECT + "yank", data=form)
        assert response.status_code == 403
        assert "isn&#39;t allowed to yank" in response.text
    assert file_state(admin, WHEEL) == (False, None)
    (event,) = audit(admin, "yank")
    assert (event.actor, event.outcome) == ("user:carol", "refused")


async def test_owner_manages_roles_and_errors_come_back_as_a_message(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        added = await post_form(
            client,
            PROJECT,
            PROJECT + "roles",
            {"role": "maintainer", "kind": "user", "member": "carol"},
        )
        assert added.status_code == 303
        assert "carol" in (await client.get(PROJECT)).text
        missing = await post_form(
            client, PROJECT, PROJECT + "roles", {"role": "owner", "kind": "user", "member": "zed"}
        )
        assert missing.status_code == 303
        assert "There is no user named" in (await client.get(PROJECT)).text
        last = await post_form(
            client, PROJECT, PROJECT + "roles/remove", {"kind": "user", "member": "alice"}
        )
        assert last.status_code == 403  # the last owner: only an admin may
        assert "last owner" in last.text


async def test_release_yank_and_upstream_project_page(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        await post_form(client, PROJECT, PROJECT + "yank", {"version": "1.1", "reason": "bad"})
        assert file_state(admin, "acme_tools-1.1-py3-none-any.whl") == (True, "bad")
        assert (await client.get("/admin/project/not-here/")).status_code == 404


async def test_normal_user_cannot_reach_admin_pages(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        for path in (
            "/admin/users",
            "/admin/names",
            "/admin/deletions",
            "/admin/audit",
            PROJECT + "delete?version=1.0",
        ):
            response = await client.get(path)
            assert response.status_code == 403, path
        form = {"name": "mallory", "password": "long-enough-pw", "admin": "on"}
        assert (await post_form(client, "/admin/account", "/admin/users", form)).status_code == 403
        assert "Users</a>" not in (await client.get("/admin/")).text
    with admin.store.sessions() as session:
        assert "mallory" not in {user.name for user in accounts.list_users(session)}


async def test_signed_out_visitor_is_sent_to_sign_in(admin: Admin) -> None:
    async with admin.client() as client:
        response = await client.get("/admin/users?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/sign-in?next=/admin/users%3Fx%3D1"
        assert (await client.post(PROJECT + "yank", data={"version": "1.0"})).status_code == 403


async def test_admin_adds_and_disables_users(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        form = {"name": "Dave", "password": "dave-secret-pw"}
        assert (await post_form(client, "/admin/users", "/admin/users", form)).status_code == 303
        page = await client.get("/admin/users")
        assert "Added the user &#39;dave&#39;." in page.text
        short = await post_form(
            client, "/admin/users", "/admin/users", {"name": "eve", "password": "x"}
        )
        assert "at least 8 characters" in (await client.get(short.headers["location"])).text
        await post_form(client, "/admin/users", "/admin/users/dave/disable", {})
    with admin.store.sessions() as session:
        users = {user.name: user for user in accounts.list_users(session)}
    assert users["dave"].disabled
    assert "eve" not in users


async def test_admin_allows_and_disallows_names(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        await post_form(
            client, "/admin/names", "/admin/names", {"name": "Requests", "reason": "fork"}
        )
        assert "fork" in (await client.get("/admin/names")).text
        with admin.store.sessions() as session:
            assert session.get(AllowedName, "requests") is not None
        await post_form(client, "/admin/names", "/admin/names/requests/disallow", {})
        with admin.store.sessions() as session:
            assert session.get(AllowedName, "requests") is None


async def test_deletion_needs_the_confirmation_text(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        start = await client.get(
            "/admin/deletions/confirm",
            params={"project": "Acme-Tools", "version": "1.0", "filename": WHEEL},
        )
        assert start.status_code == 303
        confirm_page = start.headers["location"]
        assert confirm_page.startswith(PROJECT + "delete?")
        page = await client.get(confirm_page)
        assert f"<code>{WHEEL}</code>" in page.text
        form = {"version": "1.0", "filename": WHEEL}
        wrong = await post_form(
            client, confirm_page, PROJECT + "delete", {**form, "confirm": "yes"}
        )
        assert wrong.status_code == 303
        assert file_state(admin, WHEEL) == (False, None)
        done = await post_form(client, confirm_page, PROJECT + "delete", {**form, "confirm": WHEEL})
        assert done.status_code == 303
        assert WHEEL in (await client.get("/admin/deletions")).text
    with admin.store.sessions() as session:
        assert session.get(DeletedFile, WHEEL) is not None


async def test_audit_log_filters_and_escapes(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        await post_form(
            client, PROJECT, PROJECT + "yank", {"version": "1.0", "reason": "<script>x</script>"}
        )
        client.cookies.clear()
        await sign_in(client, "root")
        page = await client.get("/admin/audit", params={"project": "Acme.Tools", "actor": "alice"})
        assert page.status_code == 200
        assert "1 event," in page.text
        assert "reason: &lt;script&gt;x&lt;/script&gt;" in page.text
        by_action = await client.get("/admin/audit", params={"action": "user-add"})
        assert "4 events," in by_action.text
        assert "yank" not in re.sub(r"<select.*?</select>", "", by_action.text, flags=re.S)


async def test_admin_sets_a_projects_attestation_requirement_and_owners_cannot(
    admin: Admin,
) -> None:
    page = "/admin/project/acme-tools/"
    action = page + "attestations"
    async with admin.client() as client:
        await sign_in(client, "alice")  # the owner: no form, and a POST is refused
        assert 'id="attestations"' not in (await client.get(page)).text
        refused = await post_form(client, page, action, {"requirement": "all"})
        assert refused.status_code == 403
    async with admin.client() as client:
        await sign_in(client, "root")
        assert 'id="attestations"' in (await client.get(page)).text
        done = await post_form(client, page, action, {"requirement": "ci"})
        assert done.status_code == 303
        shown = (await client.get(page)).text
        assert "Attestations required: ci." in shown
        assert '<option value="ci" selected>' in shown
        await post_form(client, page, action, {"requirement": "default"})
    assert [event.outcome for event in audit(admin, "attestation-requirement")] == ["ok", "ok"]
