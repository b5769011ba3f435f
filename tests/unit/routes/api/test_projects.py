"""Project roles, orphaned projects, yanks and deletions through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from packyard.db.governance import DeletedFile, YankOverride
from packyard.db.models import File
from tests.unit.routes.api.conftest import Site

RELEASE = "/projects/acme-core/releases/1.0"
WHEEL = "acme_core-1.0-py3-none-any.whl"


def yanked(site: Site) -> dict[str, tuple[bool, str | None]]:
    with site.local.sessions() as session:
        rows = session.scalars(select(File))
        return {row.filename: (row.yanked, row.yanked_reason) for row in rows}


@pytest.mark.anyio
async def test_an_owner_manages_roles_and_others_may_not(site: Site) -> None:
    alice = site.auth("alice")
    added = await site.client.post(
        "/projects/Acme.Core/roles", json={"role": "maintainer", "user": "bob"}, headers=alice
    )
    assert added.status_code == 201
    assert added.json()["role"] == "maintainer"
    assert added.json()["name"] == "bob"
    listed = await site.client.get("/projects/acme-core/roles", headers=alice)
    assert [(r["role"], r["kind"], r["name"]) for r in listed.json()] == [
        ("owner", "user", "alice"),
        ("maintainer", "user", "bob"),
    ]
    # A maintainer is not an owner: no role management, no listing.
    refused = await site.client.get("/projects/acme-core/roles", headers=site.auth("bob"))
    assert refused.status_code == 403
    assert site.events("role-list")[-1][1:3] == ("refused", "acme-core")
    removed = await site.client.delete("/projects/acme-core/roles/user/bob", headers=alice)
    assert removed.status_code == 204
    assert site.events("role-remove")[-1][3] == {"member": "user 'bob'", "role": "maintainer"}
    unknown = await site.client.get("/projects/nothing-here/roles", headers=alice)
    assert unknown.status_code == 404


@pytest.mark.anyio
async def test_the_last_owner_goes_only_by_an_admin_and_is_then_orphaned(site: Site) -> None:
    last = await site.client.delete(
        "/projects/acme-core/roles/user/alice", headers=site.auth("alice")
    )
    assert last.status_code == 403
    assert "last owner" in last.json()["detail"]
    orphaned = await site.client.get("/projects/orphaned", headers=site.auth("root"))
    assert orphaned.json() == {"projects": []}
    by_admin = await site.client.delete(
        "/projects/acme-core/roles/user/alice", headers=site.auth("root")
    )
    assert by_admin.status_code == 204
    orphaned = await site.client.get("/projects/orphaned", headers=site.auth("root"))
    assert orphaned.json() == {"projects": ["acme-core"]}
    refused = await site.client.get("/projects/orphaned", headers=site.auth("alice"))
    assert refused.status_code == 403


@pytest.mark.anyio
async def test_owners_yank_and_unyank_releases_and_files(site: Site) -> None:
    alice = site.auth("alice-scoped")
    release = await site.client.put(f"{RELEASE}/yank", json={"reason": "broken"}, headers=alice)
    assert release.status_code == 200
    assert release.json() == {
        "project": "acme-core",
        "version": "1.0",
        "filename": None,
        "changed_files": [WHEEL, "acme_core-1.0.tar.gz"],
        "override": False,
    }
    assert yanked(site)[WHEEL] == (True, "broken")
    file_undo = await site.client.delete(f"{RELEASE}/files/{WHEEL}/yank", headers=alice)
    assert file_undo.json()["changed_files"] == [WHEEL]
    assert yanked(site)[WHEEL] == (False, None)
    assert yanked(site)["acme_core-1.0.tar.gz"] == (True, "broken")
    file_yank = await site.client.put(f"{RELEASE}/files/{WHEEL}/yank", headers=alice)
    assert (file_yank.status_code, yanked(site)[WHEEL]) == (200, (True, None))
    undo = await site.client.delete(f"{RELEASE}/yank", headers=alice)
    assert sorted(undo.json()["changed_files"]) == sorted([WHEEL, "acme_core-1.0.tar.gz"])
    assert [e[1] for e in site.events("yank")] == ["ok", "ok"]


@pytest.mark.anyio
async def test_others_may_not_yank_and_the_refusal_is_audited(site: Site) -> None:
    refused = await site.client.put(f"{RELEASE}/yank", headers=site.auth("bob"))
    assert refused.status_code == 403
    assert yanked(site)[WHEEL] == (False, None)
    actor, outcome, project, _detail = site.events("yank")[-1]
    assert (actor.split("/")[0], outcome, project) == ("token:bob", "refused", "acme-core")
    missing = await site.client.put(
        "/projects/acme-core/releases/9.9/yank", headers=site.auth("alice")
    )
    assert missing.status_code == 404


@pytest.mark.anyio
async def test_only_admins_yank_an_upstream_release(site: Site) -> None:
    path = "/projects/requests/releases/2.0.0/yank"
    refused = await site.client.put(path, headers=site.auth("alice"))
    assert refused.status_code == 403
    done = await site.client.put(path, json={"reason": "CVE"}, headers=site.auth("root"))
    assert done.json()["override"] is True
    with site.local.sessions() as session:
        row = session.scalars(select(YankOverride)).one()
        assert (row.project_name, row.version, row.reason) == ("requests", "2.0.0", "CVE")
    undone = await site.client.delete(path, headers=site.auth("root"))
    assert undone.status_code == 200
    again = await site.client.delete(path, headers=site.auth("root"))
    assert again.status_code == 404


@pytest.mark.anyio
async def test_admins_delete_files_and_releases_for_good(site: Site) -> None:
    refused = await site.client.delete(RELEASE, headers=site.auth("alice"))
    assert refused.status_code == 403
    assert site.events("delete")[-1][1] == "refused"
    one = await site.client.delete(f"{RELEASE}/files/{WHEEL}", headers=site.auth("root"))
    assert one.json() == {"project": "acme-core", "version": "1.0", "deleted_files": [WHEEL]}
    rest = await site.client.delete(RELEASE, headers=site.auth("root"))
    assert rest.json()["deleted_files"] == ["acme_core-1.0.tar.gz"]
    assert sorted(yanked(site)) == ["acme_core-1.1-py3-none-any.whl"]
    with site.local.sessions() as session:
        assert len(session.scalars(select(DeletedFile)).all()) == 2
    gone = await site.client.delete(RELEASE, headers=site.auth("root"))
    assert gone.status_code == 404
