"""Attestation requirements over HTTP: admins set and clear a project's own, audited;
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from packyard.db.models import Project
from packyard.db.serial import read_serial
from tests.unit.routes.api.conftest import Site

pytestmark = pytest.mark.anyio


def own(site: Site) -> str | None:
    with site.local.sessions() as session:
        project = session.scalars(select(Project).where(Project.name == "acme-core")).one()
        return project.attestation_requirement


def serial(site: Site) -> int:
    with site.local.sessions() as session:
        return read_serial(session)


async def test_an_admin_sets_lists_and_clears_a_projects_requirement(site: Site) -> None:
    root = site.auth("root")
    before = serial(site)
    path = "/projects/Acme_Core/attestation-requirement"
    answer = await site.client.put(path, json={"requirement": "all"}, headers=root)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"project": "acme-core", "requirement": "all", "own": True}
    assert own(site) == "all"
    assert serial(site) == before + 1

    listed = (await site.client.get("/attestation-requirements", headers=root)).json()
    assert listed == {
        "configured": "none",
        "projects": [{"project": "acme-core", "requirement": "all", "own": True}],
    }

    cleared = await site.client.put(path, json={"requirement": None}, headers=root)
    assert cleared.json() == {"project": "acme-core", "requirement": "none", "own": False}
    assert own(site) is None
    events = site.events("attestation-requirement")
    assert [(outcome, detail["requirement"]) for _, outcome, _, detail in events] == [
        ("ok", "all"),
        ("ok", None),
    ]


async def test_bad_requests_say_why(site: Site) -> None:
    root = site.auth("root")
    wrong = await site.client.put(
        "/projects/acme-core/attestation-requirement", json={"requirement": "some"}, headers=root
    )
    assert wrong.status_code == 422
    missing = await site.client.put(
        "/projects/nothing-here/attestation-requirement", json={"requirement": "ci"}, headers=root
    )
    assert missing.status_code == 404
    assert "no in-house project 'nothing-here'" in missing.json()["detail"]


@pytest.mark.parametrize("who", ["alice", "alice-scoped", "bob"])
async def test_only_admins_set_requirements_even_owners(site: Site, who: str) -> None:
    answer = await site.client.put(
        "/projects/acme-core/attestation-requirement",
        json={"requirement": "none"},
        headers=site.auth(who),
    )
    assert answer.status_code == 403
    assert own(site) is None
