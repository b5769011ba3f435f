"""Users, groups and tokens through the API: who may, what is answered, what is audited."""

from __future__ import annotations

import pytest

from tests.unit.routes.api.conftest import Site


@pytest.mark.anyio
async def test_an_admin_creates_lists_and_disables_users(site: Site) -> None:
    new = {"name": "Carol", "password": "correct horse", "admin": False}
    created = await site.client.post("/users", json=new, headers=site.auth("root"))
    assert created.status_code == 201
    assert created.json()["name"] == "carol"
    assert created.json()["has_password"] is True
    assert "correct horse" not in created.text
    disabled = await site.client.post("/users/carol/disable", headers=site.auth("root"))
    assert (disabled.status_code, disabled.json()) == (200, {"name": "carol", "handovers": []})
    listed = await site.client.get("/users", headers=site.auth("root"))
    users = {user["name"]: user for user in listed.json()}
    assert sorted(users) == ["alice", "bob", "carol", "root"]
    assert users["carol"]["disabled"] is True
    assert users["root"]["is_admin"] is True
    assert [e[:2] for e in site.events("user-add")][-1] == ("token:root/" + _prefix(site), "ok")
    assert site.events("user-disable")[-1][3]["user"] == "carol"


@pytest.mark.anyio
async def test_domain_errors_are_json_details_with_their_status(site: Site) -> None:
    root = site.auth("root")
    duplicate = await site.client.post("/users", json={"name": "bob"}, headers=root)
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"detail": "A user named 'bob' already exists."},
    )
    short = await site.client.post(
        "/users", json={"name": "dan", "password": "short"}, headers=root
    )
    assert short.status_code == 400
    assert "at least 8 characters" in short.json()["detail"]
    missing = await site.client.post("/users/nobody/disable", headers=root)
    assert missing.status_code == 404
    invalid = await site.client.post("/users", json={"admin": True}, headers=root)
    assert invalid.status_code == 422  # no name: pydantic's validation error


@pytest.mark.anyio
@pytest.mark.parametrize("user", ["bob", "alice-scoped"])
async def test_account_administration_is_refused_to_non_admins_and_audited(
    site: Site, user: str
) -> None:
    refused = await site.client.post("/users", json={"name": "eve"}, headers=site.auth(user))
    assert refused.status_code == 403
    assert "only an administrator" in refused.json()["detail"]
    for path in ("/users", "/groups"):
        assert (await site.client.get(path, headers=site.auth(user))).status_code == 403
    actor, outcome, _, detail = site.events("user-add")[-1]
    assert (actor.split("/")[0], outcome) == (f"token:{user.split('-')[0]}", "refused")
    assert "only an administrator" in str(detail["message"])
    listed = await site.client.get("/users", headers=site.auth("root"))
    assert "eve" not in {user["name"] for user in listed.json()}


@pytest.mark.anyio
async def test_groups_are_created_and_members_added_and_removed(site: Site) -> None:
    root = site.auth("root")
    created = await site.client.post("/groups", json={"name": "Team"}, headers=root)
    assert (created.status_code, created.json()["name"]) == (201, "team")
    for user in ("alice", "bob"):
        added = await site.client.post("/groups/team/members", json={"user": user}, headers=root)
        assert added.status_code == 204
    again = await site.client.post("/groups/team/members", json={"user": "bob"}, headers=root)
    assert again.status_code == 409
    removed = await site.client.delete("/groups/team/members/alice", headers=root)
    assert removed.status_code == 204
    groups = (await site.client.get("/groups", headers=root)).json()
    assert [(g["name"], g["members"]) for g in groups] == [("team", ["bob"])]
    assert len(site.events("group-member-add")) == 2
    assert site.events("group-member-remove")[-1][3] == {"group": "team", "user": "alice"}
    refused = await site.client.post("/groups", json={"name": "x"}, headers=site.auth("bob"))
    assert refused.status_code == 403


@pytest.mark.anyio
async def test_a_created_token_is_shown_once_and_signs_in(site: Site) -> None:
    body = {"projects": ["Acme_Core"], "expires_days": 30, "description": "laptop"}
    created = await site.client.post("/tokens", json=body, headers=site.auth("bob"))
    assert created.status_code == 201
    token = created.json()
    assert token["user"] == "bob"
    assert token["projects"] == ["acme-core"]
    assert token["token"].startswith(token["prefix"])
    assert token["expires_at"] is not None
    site.tokens["bob-new"] = token["token"]
    listed = await site.client.get("/tokens", headers=site.auth("bob"))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [
        t["id"] for t in listed.json() if t["user"] == "bob"
    ]
    assert token["id"] in {t["id"] for t in listed.json()}
    assert all("token" not in t for t in listed.json())
    # The new token is limited to a project: it signs in, but manages no tokens.
    scoped = await site.client.get("/tokens", headers=site.auth("bob-new"))
    assert scoped.status_code == 403


@pytest.mark.anyio
async def test_users_see_and_revoke_only_their_own_tokens(site: Site) -> None:
    alices = (await site.client.get("/tokens", headers=site.auth("alice"))).json()
    assert {t["user"] for t in alices} == {"alice"}
    others = await site.client.get("/tokens", params={"user": "root"}, headers=site.auth("alice"))
    assert others.status_code == 403
    everyone = (await site.client.get("/tokens", headers=site.auth("root"))).json()
    bobs = [t for t in everyone if t["user"] == "bob"]
    assert {t["user"] for t in everyone} == {"root", "alice", "bob"}
    foreign = await site.client.delete(f"/tokens/{bobs[0]['id']}", headers=site.auth("alice"))
    assert foreign.status_code == 404
    for_bob = await site.client.post("/tokens", json={"user": "bob"}, headers=site.auth("alice"))
    assert for_bob.status_code == 403
    revoked = await site.client.delete(f"/tokens/{bobs[0]['id']}", headers=site.auth("bob"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    # Revoked: bob's token signs in no more.
    after = await site.client.get("/tokens", headers=site.auth("bob"))
    assert after.status_code == 401
    assert site.events("token-revoke")[-1][1] == "ok"


@pytest.mark.anyio
async def test_an_admin_creates_a_token_for_another_user(site: Site) -> None:
    created = await site.client.post("/tokens", json={"user": "bob"}, headers=site.auth("root"))
    assert (created.status_code, created.json()["user"]) == (201, "bob")
    site.tokens["bob-2"] = created.json()["token"]
    mine = await site.client.get("/tokens", headers=site.auth("bob-2"))
    assert mine.status_code == 200


def _prefix(site: Site) -> str:
    return site.tokens["root"][:12]


@pytest.mark.anyio
async def test_whoami_answers_any_caller_with_what_its_credential_reaches(site: Site) -> None:
    scoped = await site.client.get("/whoami", headers=site.auth("alice-scoped"))
    assert scoped.status_code == 200
    me = scoped.json()
    assert (me["name"], me["kind"], me["is_admin"], me["projects"]) == (
        "alice",
        "token",
        False,
        ["acme-core"],
    )
    assert me["actor"] == f"token:alice/{me['token']}"
    root = (await site.client.get("/whoami", headers=site.auth("root"))).json()
    assert (root["is_admin"], root["projects"]) == (True, None)
    anonymous = await site.client.get("/whoami")
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"detail"}


@pytest.mark.anyio
async def test_only_admins_enable_users_reset_passwords_and_delete_groups(site: Site) -> None:
    bob = site.auth("bob")
    for method, path, body in (
        ("POST", "/users/alice/enable", None),
        ("PUT", "/users/alice/password", {"password": "long-enough-pw"}),
        ("DELETE", "/groups/anything", None),
    ):
        refused = await site.client.request(method, path, json=body, headers=bob)
        assert refused.status_code == 403, path
        assert "only an administrator" in refused.json()["detail"]
    assert [e[1] for e in site.events("user-password-reset")] == ["refused"]
