"""Signing in and out, sessions and CSRF, over SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from packyard.db.accounts import User
from packyard.publish import accounts
from tests.unit.ui.admin.conftest import OPERATOR, Admin, csrf_token, post_form, sign_in

pytestmark = pytest.mark.anyio


async def test_sign_in_sets_a_protected_cookie_and_opens_the_admin_home(admin: Admin) -> None:
    async with admin.client() as client:
        page = await client.get("/admin/sign-in")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert 'type="password"' in page.text
        response = await sign_in(client, "alice")
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/" in cookie
        assert "secure" not in cookie  # plain HTTP and no setting
        home = await client.get("/admin/")
        assert home.status_code == 200
        assert "Hello, alice" in home.text
        # The public pages know who is signed in, and link the project's admin page.
        project = await client.get("/project/acme-tools/")
        assert 'href="/admin/project/acme-tools/">Manage acme-tools</a>' in project.text


async def test_cookie_is_secure_over_https(admin: Admin) -> None:
    async with admin.client("https://index.test") as client:
        response = await sign_in(client, "alice")
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("name", "password"), [("alice", "wrong-password"), ("nobody", "whatever-pw")]
)
async def test_wrong_password_or_unknown_user_is_refused_alike(
    admin: Admin, name: str, password: str
) -> None:
    async with admin.client() as client:
        response = await sign_in(client, name, password)
        assert response.status_code == 401
        assert "Invalid username or password." in response.text
        assert (await client.get("/admin/")).status_code == 303  # still signed out


async def test_api_token_cannot_sign_in_to_the_browser(admin: Admin) -> None:
    with admin.store.sessions.begin() as session:
        token, _ = accounts.create_token(session, "alice", actor=OPERATOR)
    async with admin.client() as client:
        response = await sign_in(client, "__token__", token)
        assert response.status_code == 401


async def test_disabled_user_cannot_sign_in_and_their_session_stops_at_once(admin: Admin) -> None:
    async with admin.client() as client:
        assert (await sign_in(client, "carol")).status_code == 303
        assert (await client.get("/admin/account")).status_code == 200
        with admin.store.sessions.begin() as session:
            accounts.disable_user(session, "carol", actor=OPERATOR)
        response = await client.get("/admin/account")
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/sign-in?next=/admin/account"
        again = await sign_in(client, "carol")
        assert again.status_code == 401
        assert "disabled" in again.text


async def test_a_new_password_ends_old_sessions(admin: Admin) -> None:
    async with admin.client() as client:
        assert (await sign_in(client, "carol")).status_code == 303
        with admin.store.sessions.begin() as session:
            user = session.scalars(select(User).where(User.name == "carol")).one()
            user.password_hash = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaA"
        assert (await client.get("/admin/")).status_code == 303


async def test_sign_in_returns_to_a_local_next_page_only(admin: Admin) -> None:
    async with admin.client() as client:
        token = await csrf_token(client, "/admin/sign-in?next=/admin/account")
        for target, expected in (
            ("/admin/account", "/admin/account"),
            ("//evil.example/", "/admin/"),
        ):
            form = {"csrf_token": token, "username": "alice", "password": "alice-secret-pw"}
            response = await client.post("/admin/sign-in", data={**form, "next": target})
            assert response.headers["location"] == expected
            client.cookies.clear()
            token = await csrf_token(client, "/admin/sign-in")


async def test_sign_in_without_csrf_token_is_refused(admin: Admin) -> None:
    async with admin.client() as client:
        await client.get("/admin/sign-in")
        form = {"username": "alice", "password": "alice-secret-pw"}
        response = await client.post("/admin/sign-in", data=form)
        assert response.status_code == 403
        assert (await client.get("/admin/")).status_code == 303


async def test_a_new_session_id_at_sign_in(admin: Admin) -> None:
    async with admin.client() as client:
        before = await csrf_token(client, "/admin/sign-in")
        await sign_in(client, "alice")
        after = await csrf_token(client, "/admin/account")
        assert before != after  # the visitor's token is worthless once signed in


@pytest.mark.parametrize("token", [None, "0" * 64, ""])
async def test_post_without_the_right_csrf_token_is_403(admin: Admin, token: str | None) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        form = {"description": "ci"} | ({"csrf_token": token} if token is not None else {})
        response = await client.post("/admin/account/tokens", data=form)
        assert response.status_code == 403
        assert "security token" in response.text
        assert "pky_" not in response.text
    with admin.store.sessions() as session:
        assert accounts.list_tokens(session, "alice") == []


async def test_post_from_another_origin_is_403(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        token = await csrf_token(client, "/admin/account")
        for origin in ("https://evil.example", "null"):
            response = await client.post(
                "/admin/account/tokens", data={"csrf_token": token}, headers={"Origin": origin}
            )
            assert response.status_code == 403
        same = await client.post(
            "/admin/account/tokens",
            data={"csrf_token": token},
            headers={"Origin": "http://index.test"},
        )
        assert same.status_code == 200


async def test_sign_out_needs_csrf_and_ends_the_session(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        assert (await client.post("/admin/sign-out", data={})).status_code == 403
        assert (await client.get("/admin/")).status_code == 200
        response = await post_form(client, "/admin/", "/admin/sign-out", {})
        assert response.status_code == 303
        assert (await client.get("/admin/")).status_code == 303
        signed_out = await client.get("/admin/sign-in")
        assert "You are signed out." in signed_out.text
