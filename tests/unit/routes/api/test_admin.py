"""Sign-in, the allow-list of names, the audit log and the OpenAPI document."""

from __future__ import annotations

import pytest

from tests.unit.routes.api.conftest import Site

CHALLENGE = 'Basic realm="packyard"'


@pytest.mark.anyio
@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + "X19fdG9rZW5fXzpwa3lfbm9wZQ==", "Bearer pky_nope", "Digest abc"],
)
async def test_no_or_wrong_credentials_get_a_basic_challenge(
    site: Site, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = await site.client.get("/users", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["detail"]


@pytest.mark.anyio
async def test_admins_allow_and_disallow_public_names(site: Site) -> None:
    root = site.auth("root")
    allowed = await site.client.put(
        "/names/allowed/Requests_Extra", json={"reason": "ours"}, headers=root
    )
    assert allowed.status_code == 200
    assert allowed.json()["name"] == "requests-extra"
    assert allowed.json()["allowed_by"].startswith("token:root/")
    listed = await site.client.get("/names/allowed", headers=root)
    assert [(n["name"], n["reason"]) for n in listed.json()] == [("requests-extra", "ours")]
    refused = await site.client.put("/names/allowed/numpy", headers=site.auth("alice"))
    assert refused.status_code == 403
    assert (await site.client.get("/names/allowed", headers=site.auth("bob"))).status_code == 403
    removed = await site.client.delete("/names/allowed/requests-extra", headers=root)
    assert removed.status_code == 204
    again = await site.client.delete("/names/allowed/requests-extra", headers=root)
    assert again.status_code == 404
    invalid = await site.client.put("/names/allowed/-bad-", headers=root)
    assert invalid.status_code == 400


@pytest.mark.anyio
async def test_the_audit_log_is_filtered_and_paged_newest_first(site: Site) -> None:
    root = site.auth("root")
    for version in ("1.0", "1.1"):
        path = f"/projects/acme-core/releases/{version}/yank"
        assert (await site.client.put(path, headers=site.auth("alice"))).status_code == 200
    await site.client.put("/projects/acme-core/releases/1.0/yank", headers=site.auth("bob"))
    first = await site.client.get(
        "/audit", params={"project": "Acme_Core", "limit": 2}, headers=root
    )
    page = first.json()
    assert [(e["action"], e["outcome"], e["version"]) for e in page["events"]] == [
        ("yank", "refused", "1.0"),
        ("yank", "ok", "1.1"),
    ]
    assert page["events"][0]["client_ip"] == "192.0.2.7"
    params = {"project": "acme-core", "limit": 2, "before": page["next_before"]}
    second = (await site.client.get("/audit", params=params, headers=root)).json()
    assert next((e["action"], e["version"]) for e in second["events"]) == ("yank", "1.0")
    ids = [e["id"] for e in page["events"] + second["events"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids)
    by_alice = (await site.client.get("/audit", params={"actor": "alice"}, headers=root)).json()
    assert {e["actor"].split("/")[0] for e in by_alice["events"]} == {"token:alice"}
    assert by_alice["next_before"] is None
    actions = {"action": "role-add", "since": "2000-01-01T00:00:00Z"}
    roles = (await site.client.get("/audit", params=actions, headers=root)).json()
    assert [e["detail"]["member"] for e in roles["events"]] == ["user 'alice'"]
    future = {"since": "2999-01-01T00:00:00Z"}
    assert (await site.client.get("/audit", params=future, headers=root)).json()["events"] == []
    assert (await site.client.get("/audit", headers=site.auth("alice"))).status_code == 403


@pytest.mark.anyio
async def test_the_openapi_document_and_docs_are_served_below_the_mount(site: Site) -> None:
    answer = await site.client.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in [
        ("/users", "post"),
        ("/groups/{group}/members", "post"),
        ("/tokens/{token_id}", "delete"),
        ("/projects/{project}/roles", "get"),
        ("/projects/orphaned", "get"),
        ("/projects/{project}/releases/{version}/yank", "put"),
        ("/projects/{project}/releases/{version}/files/{filename}", "delete"),
        ("/names/allowed/{name}", "delete"),
        ("/audit", "get"),
    ]:
        assert method in paths[path], (path, method)
    schemes = document["components"]["securitySchemes"]
    assert {scheme["scheme"] for scheme in schemes.values()} == {"basic", "bearer"}
    docs = await site.client.get("/docs")
    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text
