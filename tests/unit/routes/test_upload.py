"""`POST /legacy/` over HTTP (httpx's ASGI transport): statuses, messages in the
body, JSON errors for uv, the trailing-slash rule, and credentials before the body."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from packyard.auth.authenticate import Authenticators
from packyard.auth.identity import Identity
from packyard.errors import StoreUnavailable
from packyard.publish.accounts import add_user, create_token
from packyard.publish.upload import UploadService
from packyard.routes.upload import prefers_json, upload_routes
from packyard.settings import AuthSettings, UploadSettings
from packyard.storage.base import BlobStore, BlobWriter
from tests.builders import LocalStore, build_wheel, make_local_store
from tests.unit.publish.test_multipart import twine_form

OPERATOR = Identity(kind="cli", name="root", is_admin=True)
UV_ACCEPT = "application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7"


class AllowAll:
    async def check(self, name: str) -> None:
        return None


@dataclass
class Site:
    client: httpx.AsyncClient
    local: LocalStore
    token: str
    dists: Path

    def form(self, path: Path, **changes: str | None) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for key, value in twine_form(path, **changes):
            grouped.setdefault(key, []).append(value)
        return grouped

    async def post(
        self, path: Path, *, auth: tuple[str, str] | None = None, accept: str | None = None
    ) -> httpx.Response:
        headers = {"accept": accept} if accept else {}
        return await self.client.post(
            "/legacy/",
            data=self.form(path),
            files={"content": (path.name, await anyio.Path(path).read_bytes(), "application/zip")},
            auth=auth or ("__token__", self.token),
            headers=headers,
        )


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    local = make_local_store(tmp_path / "data")
    with local.sessions.begin() as session:
        add_user(session, "alice", None, actor=OPERATOR)
        token, _ = create_token(session, "alice", actor=OPERATOR)
    service = UploadService(
        local.sessions, local.store, AllowAll(), UploadSettings(max_file_size=64 * 1024)
    )
    async with httpx.AsyncClient() as http:
        authenticators = Authenticators(local.sessions, AuthSettings(), http)
        app = Starlette(routes=upload_routes(service, authenticators))
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            dists = tmp_path / "dists"
            dists.mkdir()
            yield Site(client, local, token, dists)


@pytest.mark.anyio
async def test_an_upload_with_a_token_is_stored(site: Site) -> None:
    wheel = build_wheel(site.dists, "acme-core", "1.0")

    response = await site.post(wheel)

    assert response.status_code == 200
    assert response.text == f"Uploaded {wheel.name} to acme-core 1.0.\n"
    assert len(site.local.blob_files()) == 2


@pytest.mark.anyio
async def test_the_same_file_again_is_200_and_other_bytes_are_already_existing(
    site: Site,
) -> None:
    wheel = build_wheel(site.dists, "acme-core", "1.0")
    await site.post(wheel)

    again = await site.post(wheel)
    (site.dists / "b").mkdir()
    other = build_wheel(site.dists / "b", "acme-core", "1.0", summary="Other bytes")
    conflict = await site.post(other)
    conflict_json = await site.post(other, accept=UV_ACCEPT)

    assert again.status_code == 200
    assert (conflict.status_code, conflict.headers["content-type"]) == (
        400,
        "text/plain; charset=utf-8",
    )
    # twine --skip-existing, poetry and pdm look for this in the body (§2.19).
    assert conflict.text.startswith(f"File already exists ({other.name!r}, with blake2_256 hash")
    blake2 = hashlib.blake2b(other.read_bytes(), digest_size=32).hexdigest()
    assert conflict_json.status_code == 400
    assert conflict_json.json() == {
        "message": conflict.text.strip(),
        "code": f"400 {conflict.text.strip()}",
        "title": "Bad Request",
    }
    assert blake2 in conflict_json.json()["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "Invalid or non-existent authentication information"),
        (("__token__", "pky_wrong"), ""),
        (("alice", "not-her-password"), ""),
    ],
)
async def test_bad_credentials_are_403_before_the_body_is_stored(
    site: Site, auth: tuple[str, str] | None, message: str
) -> None:
    wheel = build_wheel(site.dists, "acme-core", "1.0")
    headers = {"authorization": ""} if auth is None else {}
    response = await site.client.post(
        "/legacy/",
        data=site.form(wheel),
        files={"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
        auth=auth or httpx.USE_CLIENT_DEFAULT,
        headers=headers,
    )

    assert response.status_code == 403
    assert response.text.startswith(message)
    assert site.local.blob_files() == []


@pytest.mark.anyio
async def test_the_url_without_slash_is_a_308_that_says_why(site: Site) -> None:
    response = await site.client.post("/legacy", content=b"x")

    assert response.status_code == 308
    assert response.headers["location"] == "/legacy/"
    assert response.text.startswith("The upload URL needs the trailing slash")


@pytest.mark.anyio
async def test_only_post_is_allowed(site: Site) -> None:
    response = await site.client.get("/legacy/")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_retired_actions_are_410(site: Site) -> None:
    wheel = build_wheel(site.dists, "acme-core", "1.0")
    form = site.form(wheel, **{":action": "submit"})

    response = await site.client.post(
        "/legacy/", data=form, files={"content": ("x", b"")}, auth=("__token__", site.token)
    )

    assert response.status_code == 410
    assert "'submit' is no longer supported" in response.text


@pytest.mark.anyio
async def test_a_file_over_the_limit_is_400_and_not_stored(site: Site) -> None:
    big = build_wheel(
        site.dists,
        "acme-core",
        "1.0",
        extra_files={"acme_core/blob.bin": random.Random(0).randbytes(100_000)},
    )
    response = await site.post(big)

    assert response.status_code == 400
    assert response.text.startswith("File too large. Limit for project 'acme-core' is 0.0625 MB.")
    assert site.local.blob_files() == []


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (UV_ACCEPT, True),
        ("application/json", True),
        ("text/plain, application/json;q=0.5", False),
        ("*/*", False),
        ("text/html,application/xhtml+xml,*/*;q=0.8", False),
        ("application/json;q=0", False),
        ("", False),
    ],
)
def test_json_is_chosen_only_when_preferred(accept: str, expected: bool) -> None:
    assert prefers_json(accept.encode()) is expected


class DownStore:
    """A blob store that cannot be reached: every write is `StoreUnavailable`."""

    def writer(self, filename: str) -> AbstractAsyncContextManager[BlobWriter]:
        raise StoreUnavailable("s3://bucket/packyard/files", "connection refused")


@pytest.mark.anyio
async def test_a_store_that_is_down_is_a_503_naming_it_with_retry_after(site: Site) -> None:
    service = UploadService(
        site.local.sessions, cast(BlobStore, DownStore()), AllowAll(), UploadSettings()
    )
    async with httpx.AsyncClient() as http:
        authenticators = Authenticators(site.local.sessions, AuthSettings(), http)
        app = Starlette(routes=upload_routes(service, authenticators))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            down = Site(client, site.local, site.token, site.dists)
            response = await down.post(build_wheel(site.dists, "acme-core", "1.0"))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.text.startswith("The blob store s3://bucket/packyard/files is unavailable")
