"""A real store (SQLite, then PostgreSQL) behind the admin API, mounted at `/api/v1`.

Three users, each with an API token (tokens, not passwords: one argon2 check
per request would make the tests slow): `root` (admin), `alice` (owner of
the in-house project acme-core, which has releases 1.0 and 1.1) and `bob`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount

from packyard.auth.authenticate import Authenticators
from packyard.auth.identity import Identity
from packyard.db.audit import AuditEvent
from packyard.publish import accounts, ownership
from packyard.publish.importer import import_directory
from packyard.routes.api import ApiServices, api_app
from packyard.settings import AuthSettings
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


@dataclass
class Site:
    """The API client (base URL `/api/v1`), the store, and one token per user."""

    client: httpx.AsyncClient
    local: LocalStore
    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        """Headers that sign in as `user` with their token (Basic `__token__`, as pip)."""
        pair = base64.b64encode(f"__token__:{self.tokens[user]}".encode()).decode()
        return {"Authorization": "Basic " + pair}

    def events(self, action: str) -> list[tuple[str, str, str | None, dict[str, object]]]:
        """(actor, outcome, project, detail) of each audit event of `action`, oldest first."""
        with self.local.sessions() as session:
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
            return [(e.actor, e.outcome, e.project_name, json.loads(e.detail)) for e in rows]


async def _seed(tmp_path: Path, database_url: str) -> tuple[LocalStore, dict[str, str]]:
    local = make_local_store(tmp_path / "data", database_url)
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-core", "1.0")
    build_sdist(dists, "acme-core", "1.0")
    build_wheel(dists, "acme-core", "1.1")
    assert (await import_directory(dists, local.sessions, local.store)).ok
    tokens = {}
    with local.sessions.begin() as session:
        for name in ("root", "alice", "bob"):
            accounts.add_user(session, name, None, admin=name == "root", actor=OPERATOR)
        session.flush()
        for name in ("root", "alice", "bob"):
            tokens[name], _ = accounts.create_token(session, name, actor=OPERATOR)
        tokens["alice-scoped"], _ = accounts.create_token(
            session, "alice", ["acme-core"], actor=OPERATOR
        )
        ownership.add_role(session, OPERATOR, "acme-core", "owner", user="alice")
    return local, tokens


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    local, tokens = await _seed(tmp_path, database_url)
    async with httpx.AsyncClient() as unused_oidc_client:
        authenticators = Authenticators(local.sessions, AuthSettings(), unused_oidc_client)
        api = api_app(ApiServices(local.sessions, authenticators, local.store))
        app = Starlette(routes=[Mount("/api/v1", app=api)])
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
        base = "http://packyard.test/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield Site(client, local, tokens)
    local.engine.dispose()
