"""`/api/v1/advisory-policies` and `/api/v1/advisory-exceptions`: enforcement of
known vulnerabilities over HTTP, administrators only, audited. (The rules
themselves are tested on both databases in tests/unit/publish/test_advisory_rules.py.)"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from packyard.auth.authenticate import Authenticators
from packyard.db.serial import read_serial
from packyard.publish import accounts
from packyard.routes.api import ApiServices, api_app
from packyard.settings import AdvisorySettings, AuthSettings, UpstreamSettings
from tests.advisory_data import SNAPSHOT
from tests.builders import make_local_store
from tests.unit.routes.api.conftest import OPERATOR, Site

PYPI = UpstreamSettings(url="https://pypi.test/simple/", name="pypi", advisories_policy="yank")
MKDOCS = "PYSEC-2021-878"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """root (admin) and bob, each with a token; root also with one limited to a project;
    mkdocs' real record imported."""
    local = make_local_store(tmp_path / "data")
    records = tmp_path / "records"
    records.mkdir()
    shutil.copy(SNAPSHOT / "mkdocs" / f"{MKDOCS}.yaml", records)
    import_entries(local.sessions, read_source(records), actor="test", source="test")
    tokens: dict[str, str] = {}
    with local.sessions.begin() as session:
        accounts.add_user(session, "root", None, admin=True, actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
        session.flush()
        for name in ("root", "bob"):
            tokens[name], _ = accounts.create_token(session, name, actor=OPERATOR)
        tokens["root-scoped"], _ = accounts.create_token(
            session, "root", ["mkdocs"], actor=OPERATOR
        )
    async with httpx.AsyncClient() as unused_oidc_client:
        authenticators = Authenticators(local.sessions, AuthSettings(), unused_oidc_client)
        settings = AdvisorySettings(policy="hide", local_policy="warn")
        services = ApiServices(local.sessions, authenticators, local.store, (PYPI,), settings)
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
async def test_an_admin_sets_lists_and_clears_a_source_policy(site: Site) -> None:
    root = site.auth("root")
    before = serial(site)

    changed = await site.client.put(
        "/advisory-policies", json={"source": "pypi", "policy": "deny"}, headers=root
    )

    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("source", "policy", "origin", "configured")} == {
        "source": "pypi",
        "policy": "deny",
        "origin": "database",
        "configured": "yank",
    }
    assert changed.json()["set_by"].startswith("token:root/")
    assert serial(site) == before + 1
    listed = (await site.client.get("/advisory-policies", headers=root)).json()
    assert [(p["source"], p["policy"], p["origin"]) for p in listed] == [
        ("local", "warn", "config"),
        ("pypi", "deny", "database"),
    ]
    cleared = await site.client.delete(
        "/advisory-policies", params={"source": "pypi"}, headers=root
    )
    assert (cleared.status_code, cleared.json()["policy"], cleared.json()["origin"]) == (
        200,
        "yank",
        "config",
    )
    assert [e[3]["policy"] for e in site.events("advisory-policy")] == ["deny", None]


@pytest.mark.anyio
async def test_a_bad_source_or_policy_is_a_400_or_422_with_a_message(site: Site) -> None:
    root = site.auth("root")
    unknown = await site.client.put(
        "/advisory-policies", json={"source": "npm", "policy": "deny"}, headers=root
    )
    assert unknown.status_code == 400
    assert "a source is 'local', 'pypi'" in unknown.json()["detail"]
    bad = await site.client.put(
        "/advisory-policies", json={"source": "pypi", "policy": "block"}, headers=root
    )
    assert bad.status_code == 422


@pytest.mark.anyio
async def test_an_admin_accepts_lists_and_revokes_a_risk(site: Site) -> None:
    root = site.auth("root")
    body = {"advisory_id": MKDOCS, "project": "mkdocs", "reason": "docs build only"}

    accepted = await site.client.post("/advisory-exceptions", json=body, headers=root)
    again = await site.client.post("/advisory-exceptions", json=body, headers=root)

    assert (accepted.status_code, again.status_code) == (201, 200)
    assert accepted.json()["reason"] == "docs build only"
    listed = (await site.client.get("/advisory-exceptions", headers=root)).json()
    assert [(r["advisory_id"], r["project"]) for r in listed] == [(MKDOCS, "mkdocs")]
    query = {"advisory_id": MKDOCS, "project": "mkdocs"}
    revoked = await site.client.delete("/advisory-exceptions", params=query, headers=root)
    assert revoked.status_code == 204
    missing = await site.client.delete("/advisory-exceptions", params=query, headers=root)
    assert missing.status_code == 404
    assert "No accepted risk" in missing.json()["detail"]
    events = site.events("advisory-accept")
    assert [(e[1], e[2], e[3]["reason"]) for e in events] == [
        ("ok", "mkdocs", "docs build only"),
        ("ok", "mkdocs", "docs build only"),
    ]
    assert len(site.events("advisory-revoke")) == 1


@pytest.mark.anyio
async def test_an_acceptance_without_a_reason_or_of_an_unknown_id_says_why(site: Site) -> None:
    root = site.auth("root")
    empty = {"advisory_id": MKDOCS, "reason": " "}
    no_reason = await site.client.post("/advisory-exceptions", json=empty, headers=root)
    assert no_reason.status_code == 400
    assert "reason is required" in no_reason.json()["detail"]
    unknown = {"advisory_id": "PYSEC-1999-1", "reason": "x"}
    missing = await site.client.post("/advisory-exceptions", json=unknown, headers=root)
    assert missing.status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("who", ["bob", "root-scoped"])
async def test_non_admins_are_refused_with_403_and_the_refusal_is_audited(
    site: Site, who: str
) -> None:
    headers = site.auth(who)
    calls = [
        site.client.get("/advisory-policies", headers=headers),
        site.client.put(
            "/advisory-policies", json={"source": "pypi", "policy": "warn"}, headers=headers
        ),
        site.client.delete("/advisory-policies", params={"source": "pypi"}, headers=headers),
        site.client.get("/advisory-exceptions", headers=headers),
        site.client.post(
            "/advisory-exceptions",
            json={"advisory_id": MKDOCS, "project": "mkdocs", "reason": "x"},
            headers=headers,
        ),
        site.client.delete("/advisory-exceptions", params={"advisory_id": MKDOCS}, headers=headers),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403, response.text
        assert "only an administrator" in response.json()["detail"]
    assert [e[1] for e in site.events("advisory-policy")] == ["refused", "refused"]
    assert [e[1] for e in site.events("advisory-accept")] == ["refused"]
    anonymous = await site.client.get("/advisory-policies")
    assert anonymous.status_code == 401
