"""The `/simple/` ASGI handler over an in-memory chain, driven through httpx."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pypi_simple import IndexPage, ProjectPage
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from packyard.errors import ProjectNotFound, UpstreamError, UpstreamUnavailable
from packyard.model import (
    DistFile,
    ProjectDetail,
    ProjectEntry,
    ProjectList,
    RequestContext,
    Resource,
)
from packyard.repository.base import Repository
from packyard.routes.negotiation import MediaType
from packyard.routes.simple import PageCache, SimpleRoute, etag_matches
from packyard.serialize import html

V1_JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP = f"{V1_JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"
UV = f"{V1_JSON}, {V1_HTML};q=0.2, text/html;q=0.01"
POETRY = f"{V1_JSON}, */*;q=0.1"
BASE = "http://index.test"


def _detail(*filenames: str) -> ProjectDetail:
    files = tuple(DistFile(f, hashes={"sha256": "ab" * 32}, size=3) for f in filenames)
    return ProjectDetail("foo-bar", files)


class FakeChain(Repository):
    """Serves `projects`; records every context; raises `error` when set."""

    def __init__(self) -> None:
        self.projects = {"foo-bar": _detail("foo_bar-1.0.tar.gz", "foo_bar-1.0-py3-none-any.whl")}
        self.listing = ProjectList((ProjectEntry("Foo_Bar"),))
        self.contexts: list[RequestContext] = []
        self.error: Exception | None = None

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        self.contexts.append(ctx)
        return self.listing

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        self.contexts.append(ctx)
        if self.error is not None:
            raise self.error
        try:
            return self.projects[name]
        except KeyError:
            raise ProjectNotFound(name) from None

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        raise NotImplementedError


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
async def client(chain: FakeChain) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=SimpleRoute(chain))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def _accept(accept: str | None) -> dict[str, str]:
    return {} if accept is None else {"accept": accept}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PIP, V1_JSON),
        (UV, V1_JSON),
        (POETRY, V1_JSON),
        (None, "text/html; charset=utf-8"),  # hatch
        (f"{V1_HTML}, text/html;q=0.01", V1_HTML),
        ("*/*", "text/html; charset=utf-8"),
    ],
)
async def test_project_page_per_client(
    client: httpx.AsyncClient, accept: str | None, content_type: str
) -> None:
    response = await client.get("/simple/foo-bar/", headers=_accept(accept))
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["etag"].startswith('"')
    assert int(response.headers["content-length"]) == len(response.content)
    url = f"{BASE}/simple/foo-bar/"
    if content_type == V1_JSON:
        page = ProjectPage.from_json_data(response.json(), url)
    else:
        page = ProjectPage.from_html("foo-bar", response.content, url)
    assert [p.filename for p in page.packages] == [
        "foo_bar-1.0.tar.gz",
        "foo_bar-1.0-py3-none-any.whl",
    ]
    assert page.packages[0].url == f"{BASE}/files/foo-bar/foo_bar-1.0.tar.gz"
    assert page.packages[0].digests == {"sha256": "ab" * 32}


@pytest.mark.anyio
async def test_format_parameter_overrides_accept(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/simple/foo-bar/", params={"format": V1_JSON}, headers={"accept": "text/html"}
    )
    assert response.headers["content-type"] == V1_JSON


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/simple/foo-bar/", "/simple/"])
async def test_nothing_acceptable_is_406(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"accept": "application/json"})
    assert response.status_code == 406
    assert V1_JSON in response.text
    assert "text/html" in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "/simple/"),
        ("/simple?format=text/html", "/simple/?format=text/html"),
        ("/simple/foo-bar", "/simple/foo-bar/"),
        ("/simple/Foo_Bar", "/simple/foo-bar/"),
        ("/simple/Foo_Bar/", "/simple/foo-bar/"),
        ("/simple/foo.bar/", "/simple/foo-bar/"),
        ("/simple/FOO--BAR/?format=application/vnd.pypi.simple.v1%2Bjson",
         "/simple/foo-bar/?format=application/vnd.pypi.simple.v1%2Bjson"),
    ],
)  # fmt: skip
async def test_redirects_to_the_normalized_slashed_url(
    client: httpx.AsyncClient, path: str, location: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == location
    final = await client.get(path, follow_redirects=True)
    assert final.status_code == 200
    assert final.url.path in ("/simple/", "/simple/foo-bar/")
    assert final.url.query == httpx.URL(path).query


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/simple/-foo/", "/simple/foo%20bar/", "/simple//", "/simple/a_/"]
)
async def test_invalid_name_is_404_with_a_message(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "not a valid project name" in response.text


@pytest.mark.anyio
async def test_unknown_project_is_404_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/simple/nope/", headers={"accept": PIP})
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "'nope' was not found" in response.text


@pytest.mark.anyio
async def test_deeper_path_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/simple/foo-bar/extra")).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "status"),
    [(UpstreamUnavailable("pypi", "timed out"), 503), (UpstreamError("pypi", "bad page"), 502)],
)
async def test_upstream_errors(
    client: httpx.AsyncClient, chain: FakeChain, error: Exception, status: int
) -> None:
    chain.error = error
    response = await client.get("/simple/foo-bar/")
    assert response.status_code == status
    assert "pypi" in response.text


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/simple/foo-bar/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.anyio
@pytest.mark.parametrize("accept", [PIP, None])
@pytest.mark.parametrize("path", ["/simple/foo-bar/", "/simple/"])
async def test_head_has_the_headers_of_get_and_no_body(
    client: httpx.AsyncClient, accept: str | None, path: str
) -> None:
    get = await client.get(path, headers=_accept(accept))
    head = await client.head(path, headers=_accept(accept))
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers == get.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),
        ('"other", {etag}', 304),
        ("*", 304),
        ('"other"', 200),
        ('W/"other", "more"', 200),
    ],
)
@pytest.mark.parametrize("path", ["/simple/foo-bar/", "/simple/"])
async def test_if_none_match(
    client: httpx.AsyncClient, if_none_match: str, status: int, path: str
) -> None:
    etag = (await client.get(path, headers={"accept": UV})).headers["etag"]
    headers = {"accept": UV, "if-none-match": if_none_match.format(etag=etag)}
    response = await client.get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == "public, max-age=60"
    if status == 304:
        assert response.content == b""


@pytest.mark.anyio
async def test_etag_differs_per_representation(client: httpx.AsyncClient) -> None:
    accepts = [V1_JSON, V1_HTML, "text/html"]
    tags = [
        (await client.get("/simple/foo-bar/", headers={"accept": a})).headers["etag"]
        for a in accepts
    ]
    assert len(set(tags)) == 3
    stale = {"accept": V1_JSON, "if-none-match": tags[1]}
    assert (await client.get("/simple/foo-bar/", headers=stale)).status_code == 200


@pytest.mark.anyio
async def test_hostile_filename_is_escaped(client: httpx.AsyncClient, chain: FakeChain) -> None:
    hostile = 'foo_bar-1.0"><script>alert(1)</script>.tar.gz'
    chain.projects["foo-bar"] = _detail(hostile)
    response = await client.get("/simple/foo-bar/")
    assert "<script>" not in response.text
    page = ProjectPage.from_html("foo-bar", response.content, f"{BASE}/simple/foo-bar/")
    assert page.packages[0].filename == hostile


@pytest.mark.anyio
async def test_request_context_carries_client_and_user_agent(
    client: httpx.AsyncClient, chain: FakeChain
) -> None:
    await client.get("/simple/foo-bar/", headers={"user-agent": "pip/26.3"})
    assert chain.contexts[-1] == RequestContext(client="127.0.0.1", user_agent="pip/26.3")


@pytest.mark.anyio
@pytest.mark.parametrize(("accept", "json_page"), [(PIP, True), (None, False)])
async def test_project_list(client: httpx.AsyncClient, accept: str | None, json_page: bool) -> None:
    response = await client.get("/simple/", headers=_accept(accept))
    assert response.status_code == 200
    if json_page:
        assert IndexPage.from_json_data(response.json()).projects == ["Foo_Bar"]
    else:
        assert b'<a href="foo-bar/">Foo_Bar</a>' in response.content
        assert IndexPage.from_html(response.content).projects == ["Foo_Bar"]


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Counts calls of `packyard.serialize.html.<name>`."""
    calls: list[int] = []
    real: Callable[..., bytes] = getattr(html, name)

    def counted(*args: object) -> bytes:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(html, name, counted)
    return calls


@pytest.mark.anyio
async def test_same_object_reuses_the_rendered_page(
    client: httpx.AsyncClient, chain: FakeChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch, "render_project_detail")
    first = await client.get("/simple/foo-bar/")
    second = await client.get("/simple/foo-bar/")
    assert len(calls) == 1
    assert first.content == second.content
    chain.projects["foo-bar"] = _detail("foo_bar-2.0.tar.gz")
    third = await client.get("/simple/foo-bar/")
    assert len(calls) == 2
    assert b"foo_bar-2.0.tar.gz" in third.content
    assert third.headers["etag"] != first.headers["etag"]


@pytest.mark.anyio
async def test_project_list_render_is_reused_per_object(
    client: httpx.AsyncClient, chain: FakeChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch, "render_project_list")
    await client.get("/simple/")
    await client.get("/simple/")
    assert len(calls) == 1
    chain.listing = ProjectList((ProjectEntry("other"),))
    assert b"other/" in (await client.get("/simple/")).content
    assert len(calls) == 2


def test_page_cache_is_bounded() -> None:
    cache = PageCache(b"no-cache", max_entries=2)
    sources = [object() for _ in range(3)]
    for i, source in enumerate(sources):
        cache.get(f"p{i}", MediaType.JSON, source, lambda: b"{}")
    renders: list[str] = []

    def render() -> bytes:
        renders.append("rendered")
        return b"{}"

    cache.get("p0", MediaType.JSON, sources[0], render)
    cache.get("p2", MediaType.JSON, sources[2], render)
    assert renders == ["rendered"]  # p0 had been evicted; p2 was still there


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (b'"a"', True),
        (b'W/"a"', True),
        (b' "b" , "a" ', True),
        (b"*", True),
        (b'"b"', False),
        (b"a", False),
    ],
)
def test_etag_matches(header: bytes, matches: bool) -> None:
    assert etag_matches(header, b'"a"') is matches


@pytest.mark.anyio
async def test_mounted_under_a_prefix(chain: FakeChain) -> None:
    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "root_path": "/pypi", "path": "/pypi" + scope["path"]}
        await SimpleRoute(chain)(scope, receive, send)

    transport = httpx.ASGITransport(app=mounted)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        assert (await client.get("/simple/foo-bar/")).status_code == 200
        location = (await client.get("/simple/Foo_Bar/")).headers["location"]
        assert location == "/pypi/simple/foo-bar/"
