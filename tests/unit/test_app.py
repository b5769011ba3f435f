"""The application factory: dispatch by path prefix, health, home page, lifespan."""

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from packyard.app import create_app
from packyard.errors import ProjectNotFound
from packyard.model import ProjectDetail, ProjectList, RequestContext, Resource
from packyard.repository.base import Repository


class EmptyChain(Repository):
    """Knows no project; records whether it was closed and whether it was asked."""

    def __init__(self) -> None:
        self.closed = False
        self.calls = 0

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        self.calls += 1
        return ProjectList(())

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        self.calls += 1
        raise ProjectNotFound(name)

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        raise NotImplementedError

    @override
    async def aclose(self) -> None:
        self.closed = True


async def files_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for `FilesRoute`: echoes the full path it was given."""
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def chain() -> EmptyChain:
    return EmptyChain()


@pytest.fixture
async def client(chain: EmptyChain) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(chain, files_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        yield client


@pytest.mark.anyio
async def test_health_does_not_touch_the_chain(
    client: httpx.AsyncClient, chain: EmptyChain
) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert chain.calls == 0
    assert (await client.head("/healthz")).content == b""
    assert (await client.post("/healthz")).status_code == 405


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/simple/", 200),
        ("/simple", 301),
        ("/simple/nope/", 404),
        ("/simplex", 404),
        ("/nope", 404),
    ],
)
async def test_dispatch(client: httpx.AsyncClient, path: str, status: int) -> None:
    assert (await client.get(path)).status_code == status


@pytest.mark.anyio
async def test_files_get_the_full_path(client: httpx.AsyncClient) -> None:
    response = await client.get("/files/foo/foo-1.0.tar.gz")
    assert response.text == "/files/foo/foo-1.0.tar.gz"


@pytest.mark.anyio
async def test_no_files_app_is_404(chain: EmptyChain) -> None:
    transport = httpx.ASGITransport(app=create_app(chain))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        response = await client.get("/files/foo/foo-1.0.tar.gz")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_home_page_links_to_the_index(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="simple/"' in response.text


@pytest.mark.anyio
async def test_lifespan_shutdown_closes_the_chain(chain: EmptyChain) -> None:
    app = create_app(chain)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return messages.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert chain.closed
