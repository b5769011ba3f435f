"""The admin pages over a real store (SQLite and PostgreSQL), as compose.py wires them.

Users: `root` (admin), `alice` (owner of acme-tools), `bob` (maintainer through
the group `devs`), `carol` (no role). Every password is `PASSWORDS[name]`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.middleware import Middleware

from packyard.app import create_app
from packyard.auth.authenticate import Authenticators
from packyard.auth.identity import Identity
from packyard.publish import accounts, ownership
from packyard.publish.importer import import_directory
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import MetadataRepository
from packyard.repository.yank import YankRepository
from packyard.routes.files import FilesRoute
from packyard.routes.ui.admin import ViewerMiddleware, admin_routes
from packyard.settings import AuthSettings, UpstreamSettings
from tests.builders import LocalStore, build_wheel, make_local_store

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)
PASSWORDS = {name: f"{name}-secret-pw" for name in ("root", "alice", "bob", "carol")}
SECRET = b"test-secret-0123456789abcdef0123"
# Never contacted: the policies page only names them.
UPSTREAMS = (
    UpstreamSettings(
        url="http://127.0.0.1:9/simple/", name="mirror", deny=("Evil_*",), cooldown_days=2
    ),
    UpstreamSettings(url="http://127.0.0.1:9/other/simple/"),
)
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Admin:
    """The app, its store and an HTTP client without cookies of its own."""

    app: httpx.ASGITransport
    store: LocalStore

    def client(self, base_url: str = "http://index.test") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.app, base_url=base_url)


async def csrf_token(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF token of the form on page `path`."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    found = TOKEN_FIELD.search(response.text)
    assert found is not None, response.text
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, name: str, password: str | None = None
) -> httpx.Response:
    """Sign in through the form, as a browser does (the client keeps the cookie)."""
    token = await csrf_token(client, "/admin/sign-in")
    form = {"csrf_token": token, "username": name, "password": password or PASSWORDS[name]}
    return await client.post("/admin/sign-in", data=form)


async def post_form(
    client: httpx.AsyncClient, page: str, action: str, form: dict[str, str]
) -> httpx.Response:
    """Submit `form` to `action` with the CSRF token of `page`."""
    return await client.post(action, data={"csrf_token": await csrf_token(client, page), **form})


async def _populate(store: LocalStore, dists: Path) -> None:
    report = await import_directory(dists, store.sessions, store.store)
    assert report.ok, report
    with store.sessions.begin() as session:
        for name, password in PASSWORDS.items():
            accounts.add_user(session, name, password, admin=name == "root", actor=OPERATOR)
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "bob", actor=OPERATOR)
    with store.sessions.begin() as session:
        ownership.add_role(session, OPERATOR, "acme-tools", "owner", user="alice")
        ownership.add_role(session, OPERATOR, "acme-tools", "maintainer", group="devs")


@pytest.fixture
async def admin(tmp_path: Path, database_url: str) -> AsyncIterator[Admin]:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-tools", "1.0", summary="Tools")
    build_wheel(dists, "acme-tools", "1.1", summary="Tools")
    store = make_local_store(tmp_path / "store", database_url)
    await _populate(store, dists)
    local = LocalRepository(store.sessions, store.store)
    chain = MetadataRepository(YankRepository(local, store.sessions), store.store)
    async with httpx.AsyncClient() as unused_http:  # only CI tokens would use it
        authenticators = Authenticators(store.sessions, AuthSettings(), unused_http)
        routes = admin_routes(
            store.sessions, store.store, authenticators, SECRET, upstreams=UPSTREAMS
        )
        middleware = [Middleware(ViewerMiddleware, sessions=store.sessions, secret=SECRET)]
        app = create_app(chain, FilesRoute(chain), routes=routes, middleware=middleware)
        yield Admin(httpx.ASGITransport(app=app), store)
    await chain.aclose()
    store.engine.dispose()
