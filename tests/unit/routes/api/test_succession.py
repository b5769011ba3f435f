"""Disabling and retiring users through the API: the projects only they owned are
handed over, and the answer says to whom."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount

from packyard.auth.authenticate import Authenticators
from packyard.compose import build_app, prepare_state
from packyard.db.accounts import User
from packyard.db.engine import session_factory_for
from packyard.db.models import Project
from packyard.publish import accounts, ownership
from packyard.routes.api import ApiServices, api_app
from packyard.settings import AuthSettings, Settings, SuccessionSettings
from tests.unit.routes.api.conftest import OPERATOR, Site, _seed

pytestmark = pytest.mark.anyio


@pytest.fixture
async def with_fallback(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    """The conftest's site, configured with `[auth.succession] fallback_group = "ops"`
    (a group whose member is bob)."""
    local, tokens = await _seed(tmp_path, database_url)
    with local.sessions.begin() as session:
        accounts.create_group(session, "ops", actor=OPERATOR)
        accounts.add_member(session, "ops", "bob", actor=OPERATOR)
    async with httpx.AsyncClient() as unused_oidc_client:
        authenticators = Authenticators(local.sessions, AuthSettings(), unused_oidc_client)
        services = ApiServices(
            local.sessions,
            authenticators,
            local.store,
            succession=SuccessionSettings(fallback_group="ops"),
        )
        app = Starlette(routes=[Mount("/api/v1", app=api_app(services))])
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
        base = "http://packyard.test/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield Site(client, local, tokens)
    local.engine.dispose()


def owners(site: Site, project: str) -> list[str]:
    with site.local.sessions() as session:
        roles = ownership.list_roles(session, project)
    return sorted(f"{r.kind}:{r.name}" for r in roles if r.role == "owner")


async def test_disabling_a_user_hands_their_project_to_their_manager(site: Site) -> None:
    with site.local.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "alice")).one().manager = "bob"
    disabled = await site.client.post("/users/Alice/disable", headers=site.auth("root"))
    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {
        "name": "alice",
        "handovers": [
            {"project": "acme-core", "to_user": "bob", "to_group": None, "orphaned": None}
        ],
    }
    assert owners(site, "acme-core") == ["user:alice", "user:bob"]
    assert site.events("project-handover")[-1][2:] == (
        "acme-core",
        {"from_user": "alice", "to": "bob", "reason": "disabled", "via": "manager"},
    )


async def test_without_a_successor_the_answer_says_why(site: Site) -> None:
    disabled = await site.client.post("/users/alice/disable", headers=site.auth("root"))
    (handover,) = disabled.json()["handovers"]
    assert handover["orphaned"] == (
        "'alice' has no manager known, and no [auth.succession] fallback_group is set"
    )
    orphaned = await site.client.get("/projects/orphaned", headers=site.auth("root"))
    assert "acme-core" in orphaned.text


async def test_the_configured_fallback_group_takes_over(with_fallback: Site) -> None:
    site = with_fallback
    disabled = await site.client.post("/users/alice/disable", headers=site.auth("root"))
    assert disabled.json()["handovers"][0]["to_group"] == "ops"
    assert owners(site, "acme-core") == ["group:ops", "user:alice"]


async def test_retire_to_a_named_user_or_group(with_fallback: Site) -> None:
    site = with_fallback
    to_bob = await site.client.post(
        "/users/alice/retire", json={"to": "bob"}, headers=site.auth("root")
    )
    assert to_bob.status_code == 200, to_bob.text
    assert to_bob.json()["handovers"][0]["to_user"] == "bob"
    with site.local.sessions.begin() as session:
        ownership.remove_role(session, OPERATOR, "acme-core", user="bob")
    to_ops = await site.client.post(
        "/users/alice/retire", json={"to": "group:ops"}, headers=site.auth("root")
    )
    assert to_ops.json()["handovers"][0]["to_group"] == "ops"
    default = await site.client.post("/users/alice/retire", headers=site.auth("root"))
    assert (default.status_code, default.json()["handovers"]) == (200, [])
    assert [e[3]["to"] for e in site.events("user-retire")] == ["bob", "group:ops", None]


@pytest.mark.parametrize(
    ("to", "status", "detail"),
    [
        ("alice", 400, "'alice' cannot be their own successor"),
        ("nobody", 404, "There is no user or group named 'nobody'."),
    ],
)
async def test_retire_to_oneself_or_an_unknown_successor_is_refused(
    site: Site, to: str, status: int, detail: str
) -> None:
    refused = await site.client.post(
        "/users/alice/retire", json={"to": to}, headers=site.auth("root")
    )
    assert refused.status_code == status
    assert refused.json()["detail"].startswith(detail)
    assert owners(site, "acme-core") == ["user:alice"]


async def test_only_admins_retire_users_and_refusals_are_audited(site: Site) -> None:
    refused = await site.client.post(
        "/users/bob/retire", json={"to": "alice"}, headers=site.auth("alice")
    )
    assert refused.status_code == 403
    assert [e[1] for e in site.events("user-retire")] == ["refused"]
    with site.local.sessions() as session:
        assert not session.scalars(select(User).where(User.name == "bob")).one().disabled


async def test_the_openapi_document_lists_retire(site: Site) -> None:
    document = (await site.client.get("/openapi.json")).json()
    operation = document["paths"]["/users/{name}/retire"]["post"]
    assert {"200", "400", "403", "404", "409"} <= set(operation["responses"])


async def test_the_built_app_hands_over_to_the_configured_fallback_group(tmp_path: Path) -> None:
    """compose.py passes `[auth.succession]` to the API (and the admin pages)."""
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "upstreams": [],
            "auth": {"succession": {"fallback_group": "ops"}},
            "telemetry": {"events": False, "metrics": False},
        }
    )
    engine = prepare_state(settings)
    with session_factory_for(engine).begin() as session:
        for name in ("root", "alice", "bob"):
            accounts.add_user(session, name, None, admin=name == "root", actor=OPERATOR)
        accounts.create_group(session, "ops", actor=OPERATOR)
        accounts.add_member(session, "ops", "bob", actor=OPERATOR)
        session.add(Project(name="solo", display_name="solo", created_at=datetime.now(UTC)))
        session.flush()
        ownership.add_role(session, OPERATOR, "solo", "owner", user="alice")
        token, _ = accounts.create_token(session, "root", actor=OPERATOR)
    engine.dispose()
    basic = base64.b64encode(f"__token__:{token}".encode()).decode()
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        disabled = await client.post(
            "/api/v1/users/alice/disable", headers={"Authorization": "Basic " + basic}
        )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["handovers"][0]["to_group"] == "ops"
