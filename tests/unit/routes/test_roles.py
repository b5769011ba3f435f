"""Roles: each path belongs to one role; a process of another role answers 404 naming it."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from packyard.routes.roles import RoleGate, role_of, serves
from packyard.settings import Role


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/simple/", "index"),
        ("/simple", "index"),
        ("/simple/acme/", "index"),
        ("/files/acme/acme-1.0.tar.gz", "index"),
        ("/snapshot/2026-01-01/simple/", "index"),
        ("/osv/v1/querybatch", "index"),
        ("/osv/v1/vulns/PYSEC-2019-217", "index"),
        ("/legacy/", "upload"),
        ("/legacy", "upload"),
        ("/api/v1/projects", "upload"),
        ("/", "browser"),
        ("/search", "browser"),
        ("/project/acme/", "browser"),
        ("/admin/sign-in", "browser"),
        ("/static/app.css", "browser"),
        ("/simpler", "browser"),
        ("/healthz", "all"),
        ("/readyz", "all"),
        ("/metrics", "all"),
    ],
)
def test_each_path_belongs_to_one_role(path: str, role: str) -> None:
    assert role_of(path) == role


@pytest.mark.parametrize("role", ["all", "index", "upload", "browser"])
def test_operations_paths_are_served_by_every_role(role: Role) -> None:
    assert all(serves(role, path) for path in ("/healthz", "/readyz", "/metrics"))


def test_all_serves_everything_and_the_others_only_their_own() -> None:
    paths = ["/simple/", "/legacy/", "/", "/api/v1/"]
    assert all(serves("all", path) for path in paths)
    assert [serves("index", path) for path in paths] == [True, False, False, False]
    assert [serves("upload", path) for path in paths] == [False, True, False, True]
    assert [serves("browser", path) for path in paths] == [False, False, True, False]


async def answered(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


@pytest.mark.anyio
async def test_a_path_of_another_role_is_a_404_that_names_both_roles() -> None:
    gate = RoleGate(answered, "index")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gate), base_url="http://packyard"
    ) as client:
        assert (await client.get("/simple/")).text == "served"
        refused = await client.get("/legacy/")
        head = await client.head("/project/acme/")
    assert refused.status_code == 404
    assert "serves the index role only" in refused.text
    assert "/legacy/ belongs to the upload role" in refused.text
    assert (head.status_code, head.content) == (404, b"")
