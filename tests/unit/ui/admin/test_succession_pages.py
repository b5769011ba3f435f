"""Disabling and retiring users on the users page hands over the projects only they
owned; the successor sees a notice on "My account" until they dismiss it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.middleware import Middleware

from packyard.app import create_app
from packyard.auth.authenticate import Authenticators
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.publish import ownership
from packyard.repository.local import LocalRepository
from packyard.routes.files import FilesRoute
from packyard.routes.ui.admin import ViewerMiddleware, admin_routes
from packyard.settings import AuthSettings
from tests.builders import build_wheel, make_local_store
from tests.unit.ui.admin.conftest import SECRET, Admin, _populate, post_form, sign_in

pytestmark = pytest.mark.anyio
HANDED = "Projects handed to you"


@pytest.fixture
async def with_fallback(tmp_path: Path) -> AsyncIterator[Admin]:
    """The conftest's pages (on SQLite), configured with the fallback group devs (bob)."""
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-tools", "1.0")
    store = make_local_store(tmp_path / "store")
    await _populate(store, dists)
    chain = LocalRepository(store.sessions, store.store)
    async with httpx.AsyncClient() as unused_http:
        authenticators = Authenticators(store.sessions, AuthSettings(), unused_http)
        routes = admin_routes(
            store.sessions, store.store, authenticators, SECRET, fallback_group="devs"
        )
        middleware = [Middleware(ViewerMiddleware, sessions=store.sessions, secret=SECRET)]
        app = create_app(chain, FilesRoute(chain), routes=routes, middleware=middleware)
        yield Admin(httpx.ASGITransport(app=app), store)
    await chain.aclose()
    store.engine.dispose()


def owners(admin: Admin) -> list[str]:
    with admin.store.sessions() as session:
        roles = ownership.list_roles(session, "acme-tools")
    return sorted(f"{r.kind}:{r.name}" for r in roles if r.role == "owner")


def audited(admin: Admin, action: str) -> list[dict[str, object]]:
    with admin.store.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return [json.loads(event.detail) for event in session.scalars(query)]


def set_manager(admin: Admin, manager: str) -> None:
    with admin.store.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "alice")).one().manager = manager


async def flash_after(client: httpx.AsyncClient, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return (await client.get(response.headers["location"])).text


async def test_disabling_hands_the_project_to_the_manager_who_is_told(admin: Admin) -> None:
    set_manager(admin, "carol")
    async with admin.client() as client:
        await sign_in(client, "root")
        done = await post_form(client, "/admin/users", "/admin/users/alice/disable", {})
        page = await flash_after(client, done)
        assert "Disabled the user &#39;alice&#39;. Handed over: acme-tools to carol." in page
    assert owners(admin) == ["user:alice", "user:carol"]
    assert audited(admin, "project-handover")[-1]["to"] == "carol"
    async with admin.client() as client:
        await sign_in(client, "carol")
        account = (await client.get("/admin/account")).text
        assert HANDED in account
        assert "acme-tools</a>,\n      from alice (their account was disabled)" in account


async def test_disabling_without_a_manager_hands_over_to_the_fallback_group(
    with_fallback: Admin,
) -> None:
    async with with_fallback.client() as client:
        await sign_in(client, "root")
        done = await post_form(client, "/admin/users", "/admin/users/alice/disable", {})
        assert "Handed over: acme-tools to group:devs." in await flash_after(client, done)
    assert owners(with_fallback) == ["group:devs", "user:alice"]


async def test_retire_with_a_successor_and_group_members_see_and_dismiss_the_notice(
    admin: Admin,
) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        users = (await client.get("/admin/users")).text
        assert 'action="/admin/users/alice/retire"' in users
        assert 'action="/admin/users/root/retire"' not in users  # not oneself
        done = await post_form(
            client, "/admin/users", "/admin/users/alice/retire", {"to": "group:devs"}
        )
        page = await flash_after(client, done)
        assert "Retired the user &#39;alice&#39;. Handed over: acme-tools to group:devs." in page
    assert owners(admin) == ["group:devs", "user:alice"]  # the maintainer role, promoted
    assert audited(admin, "user-retire") == [
        {"user": "alice", "to": "group:devs", "projects": {"acme-tools": "group:devs"}}
    ]
    async with admin.client() as client:
        await sign_in(client, "bob")
        account = (await client.get("/admin/account")).text
        assert "from alice (they were retired), to your group devs" in account
        found = re.search(r"/admin/account/handovers/\d+/dismiss", account)
        assert found is not None
        action = found.group(0)
        forged = await client.post(action, data={})
        assert forged.status_code == 403
        dismissed = await post_form(client, "/admin/account", action, {})
        page = await flash_after(client, dismissed)
        assert "The notice is dismissed." in page
        assert HANDED not in page
        unknown = "/admin/account/handovers/999999/dismiss"
        again = await post_form(client, "/admin/account", unknown, {})
        assert "no such notice" in await flash_after(client, again)
    async with admin.client() as client:
        await sign_in(client, "carol")
        assert HANDED not in (await client.get("/admin/account")).text


@pytest.mark.parametrize(
    ("name", "to", "message"),
    [
        ("root", "", "You cannot retire yourself: ask another admin."),
        ("alice", "alice", "&#39;alice&#39; cannot be their own successor"),
        ("alice", "nobody", "There is no user or group named &#39;nobody&#39;."),
    ],
)
async def test_retire_refuses_oneself_and_unknown_successors(
    admin: Admin, name: str, to: str, message: str
) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        done = await post_form(client, "/admin/users", f"/admin/users/{name}/retire", {"to": to})
        assert message in await flash_after(client, done)
    assert owners(admin) == ["user:alice"]
