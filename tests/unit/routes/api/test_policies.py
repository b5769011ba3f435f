"""`/api/v1/policies`: the upstreams' curation over HTTP, administrators only,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from packyard.auth.authenticate import Authenticators
from packyard.db.serial import read_serial
from packyard.publish import accounts
from packyard.routes.api import ApiServices, api_app
from packyard.settings import AuthSettings, UpstreamSettings
from tests.builders import make_local_store
from tests.unit.routes.api.conftest import OPERATOR, Site

PYPI = UpstreamSettings(url="https://pypi.test/simple/", name="pypi", deny=("evil-*",))
MIRROR = UpstreamSettings(url="https://mirror.test/simple/", cooldown_days=7)


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    """root (admin) and bob, each with a token; root also with one limited to a project."""
    local = make_local_store(tmp_path / "data", database_url)
    tokens: dict[str, str] = {}
    with local.sessions.begin() as session:
        accounts.add_user(session, "root", None, admin=True, actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
        session.flush()
        for name in ("root", "bob"):
            tokens[name], _ = accounts.create_token(session, name, actor=OPERATOR)
        tokens["root-scoped"], _ = accounts.create_token(
            session, "root", ["acme-core"], actor=OPERATOR
        )
    async with httpx.AsyncClient() as unused_oidc_client:
        authenticators = Authenticators(local.sessions, AuthSettings(), unused_oidc_client)
        services = ApiServices(local.sessions, authenticators, local.store, (PYPI, MIRROR))
        app = Starlette(routes=[Mount("/api/v1", app=api_app(services))])
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
        base = "http://packyard.test/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield Site(client, local, tokens)
    local.engine.dispose()


def serial(site: Site) -> int:
    with site.local.sessions() as session:
        return read_serial(session)


@pytest.mark.anyio
async def test_admins_add_list_and_remove_rules_marked_by_origin(site: Site) -> None:
    root = site.auth("root")
    before = serial(site)
    body = {"upstream": "pypi", "kind": "deny", "glob": "Public_*"}
    added = await site.client.post("/policies/rules", json=body, headers=root)
    again = await site.client.post("/policies/rules", json=body, headers=root)

    assert (added.status_code, again.status_code) == (201, 200)
    assert added.json()["glob"] == "public-*"
    assert added.json()["origin"] == "database"
    assert added.json()["added_by"].startswith("token:root/")
    assert serial(site) == before + 1

    listed = (await site.client.get("/policies", headers=root)).json()
    assert [(p["upstream"], p["configured"]) for p in listed] == [
        ("pypi", True),
        ("https://mirror.test/simple/", True),
    ]
    assert [(r["kind"], r["glob"], r["origin"]) for r in listed[0]["rules"]] == [
        ("deny", "evil-*", "config"),
        ("deny", "public-*", "database"),
    ]
    assert (listed[1]["cooldown"]["days"], listed[1]["cooldown"]["origin"]) == (7, "config")

    query = {"upstream": "pypi", "kind": "deny", "glob": "public-*"}
    removed = await site.client.delete("/policies/rules", params=query, headers=root)
    assert removed.status_code == 204
    missing = await site.client.delete("/policies/rules", params=query, headers=root)
    assert missing.status_code == 404
    configured = {"upstream": "pypi", "kind": "deny", "glob": "evil-*"}
    from_config = await site.client.delete("/policies/rules", params=configured, headers=root)
    assert from_config.status_code == 400
    assert "configuration file" in from_config.json()["detail"]
    assert [e[3]["glob"] for e in site.events("policy-remove")] == ["public-*"]


@pytest.mark.anyio
async def test_an_upstream_without_a_name_is_given_by_its_url(site: Site) -> None:
    body = {"upstream": MIRROR.url, "days": 0}
    answer = await site.client.put("/policies/cooldown", json=body, headers=site.auth("root"))
    assert answer.status_code == 200
    assert answer.json() == {
        "upstream": MIRROR.url,
        "days": 0,
        "origin": "database",
        "configured_days": 7,
        "set_by": answer.json()["set_by"],
        "set_at": answer.json()["set_at"],
    }
    reset = await site.client.put(
        "/policies/cooldown", json={"upstream": MIRROR.url, "days": None}, headers=site.auth("root")
    )
    assert (reset.json()["days"], reset.json()["origin"]) == (7, "config")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/policies/rules", {"upstream": "pypy", "kind": "deny", "glob": "x"}, "'pypi'"),
        ("/policies/rules", {"upstream": "pypi", "kind": "deny", "glob": "a/b"}, "not a valid"),
        ("/policies/cooldown", {"upstream": "pypi", "days": -1}, "0 to 3650"),
    ],
)
async def test_bad_requests_are_400_with_a_message(
    site: Site, path: str, body: dict[str, object], message: str
) -> None:
    method = site.client.post if path.endswith("rules") else site.client.put
    answer = await method(path, json=body, headers=site.auth("root"))
    assert answer.status_code == 400
    assert message in answer.json()["detail"]


@pytest.mark.anyio
async def test_a_kind_other_than_allow_or_deny_is_a_validation_error(site: Site) -> None:
    body = {"upstream": "pypi", "kind": "block", "glob": "x"}
    answer = await site.client.post("/policies/rules", json=body, headers=site.auth("root"))
    assert answer.status_code == 422


@pytest.mark.anyio
@pytest.mark.parametrize("who", ["bob", "root-scoped"])
async def test_only_unrestricted_admins_see_or_change_policies(site: Site, who: str) -> None:
    headers = site.auth(who)
    before = serial(site)
    body = {"upstream": "pypi", "kind": "deny", "glob": "x"}
    answers = [
        await site.client.get("/policies", headers=headers),
        await site.client.post("/policies/rules", json=body, headers=headers),
        await site.client.delete("/policies/rules", params=body, headers=headers),
        await site.client.put(
            "/policies/cooldown", json={"upstream": "pypi", "days": 1}, headers=headers
        ),
    ]
    assert [answer.status_code for answer in answers] == [403, 403, 403, 403]
    assert serial(site) == before
    assert [outcome for _, outcome, _, _ in site.events("policy-add")] == ["refused"]
    anonymous = await site.client.get("/policies")
    assert anonymous.status_code == 401


@pytest.mark.anyio
async def test_admins_exempt_a_project_from_the_cooldown_with_a_reason_and_take_it_back(
    site: Site,
) -> None:
    root = site.auth("root")
    before = serial(site)
    body = {"upstream": MIRROR.url, "project": "Urgent_Fix", "reason": "CVE fix, today"}
    added = await site.client.post("/policies/cooldown-exemptions", json=body, headers=root)
    again = await site.client.post(
        "/policies/cooldown-exemptions", json={**body, "reason": "the fix"}, headers=root
    )

    assert (added.status_code, again.status_code) == (201, 200)
    assert (added.json()["project"], added.json()["reason"]) == ("urgent-fix", "CVE fix, today")
    assert again.json()["reason"] == "the fix"
    assert serial(site) == before + 1  # a new reason changes nothing served
    listed = (await site.client.get("/policies", headers=root)).json()
    assert [e["project"] for e in listed[1]["cooldown_exemptions"]] == ["urgent-fix"]
    assert listed[0]["cooldown_exemptions"] == []

    query = {"upstream": MIRROR.url, "project": "urgent-fix"}
    removed = await site.client.delete("/policies/cooldown-exemptions", params=query, headers=root)
    missing = await site.client.delete("/policies/cooldown-exemptions", params=query, headers=root)
    assert (removed.status_code, missing.status_code) == (204, 404)
    assert "has no cool-down exemption" in missing.json()["detail"]
    assert serial(site) == before + 2
    assert [(e[1], e[2], e[3].get("reason")) for e in site.events("policy-exempt")] == [
        ("ok", "urgent-fix", "CVE fix, today"),
        ("ok", "urgent-fix", "the fix"),
    ]
    assert [e[2] for e in site.events("policy-unexempt")] == ["urgent-fix"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "pypy", "project": "x", "reason": "r"}, "'pypi'"),
        ({"upstream": "pypi", "project": "a/b", "reason": "r"}, "is invalid"),
        ({"upstream": "pypi", "project": "x", "reason": "  "}, "a reason is required"),
        ({"upstream": "pypi", "project": "x", "reason": "r" * 2001}, "at most 2000"),
    ],
)
async def test_a_bad_exemption_is_400_with_a_message(
    site: Site, body: dict[str, object], message: str
) -> None:
    before = serial(site)
    answer = await site.client.post(
        "/policies/cooldown-exemptions", json=body, headers=site.auth("root")
    )
    assert answer.status_code == 400
    assert message in answer.json()["detail"]
    assert serial(site) == before


@pytest.mark.anyio
@pytest.mark.parametrize("who", ["bob", "root-scoped"])
async def test_only_unrestricted_admins_exempt_projects(site: Site, who: str) -> None:
    body = {"upstream": "pypi", "project": "acme-core", "reason": "r"}
    added = await site.client.post(
        "/policies/cooldown-exemptions", json=body, headers=site.auth(who)
    )
    removed = await site.client.delete(
        "/policies/cooldown-exemptions",
        params={"upstream": "pypi", "project": "acme-core"},
        headers=site.auth(who),
    )
    assert (added.status_code, removed.status_code) == (403, 403)
    assert [outcome for _, outcome, _, _ in site.events("policy-exempt")] == ["refused"]
