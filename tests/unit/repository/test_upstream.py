"""UpstreamRepository and UpstreamOpener against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web

from packyard.errors import (
    FileNotFound,
    ProjectNotFound,
    RangeNotSatisfiable,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.model import ANONYMOUS, ByteRange, RemoteFile
from packyard.repository import upstream as upstream_module
from packyard.repository.upstream import (
    ACCEPT,
    UpstreamRepository,
    make_upstream_client,
)
from packyard.repository.upstream_http import MAX_REDIRECTS
from packyard.repository.upstream_opener import CHUNK_SIZE, UpstreamOpener
from packyard.settings import UpstreamSettings
from tests.unit.upstream_server import (
    FakeUpstream,
    Handler,
    Servers,
    chunks_of,
    refused_url,
    response,
    streamed,
)

pytestmark = pytest.mark.anyio

JSON = "application/vnd.pypi.simple.v1+json"
SHA = "a" * 64
META_SHA = "b" * 64


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with Servers() as servers:
        yield servers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def project_json(*filenames: str, version: str = "1.1") -> bytes:
    files = [
        {
            "filename": filename,
            "url": f"../../files/{filename}",
            "hashes": {"sha256": SHA},
            "size": 10,
            "core-metadata": {"sha256": META_SHA} if filename.endswith(".whl") else False,
        }
        for filename in filenames
    ]
    page = {"meta": {"api-version": version}, "name": "demo", "files": files}
    return json.dumps(page).encode()


class Index:
    """A fake index served on 127.0.0.1; `requests` are the requests it received."""

    def __init__(self, server: FakeUpstream, servers: Servers) -> None:
        self.server = server
        self.servers = servers
        self.url = server.url
        self.base = server.url + "/simple/"

    @property
    def requests(self) -> list[web.BaseRequest]:
        return self.server.requests

    def repository(
        self,
        ttl: float = 0.0,
        clock: Clock | None = None,
        timeout: float = 30.0,
        file_hosts: tuple[str, ...] | None = None,
    ) -> UpstreamRepository:
        settings = UpstreamSettings(
            url=self.base, name="pypi", page_ttl=ttl, timeout=timeout, file_hosts=file_hosts
        )
        client = self.servers.client(settings)
        return UpstreamRepository(settings, client, clock=clock or Clock())


async def index(servers: Servers, handler: Handler) -> Index:
    return Index(await servers.start(handler), servers)


def serve(body: bytes, content_type: str = JSON, status: int = 200, **headers: str) -> Handler:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return response(body, status, {"Content-Type": content_type, **headers})

    return handler


async def test_json_page_is_read_and_negotiated(servers: Servers) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0-py3-none-any.whl")))
    page = await upstream.repository().get_project("demo", ANONYMOUS)
    (request,) = upstream.requests
    assert request.path == "/simple/demo/"
    assert request.headers["Accept"] == ACCEPT
    assert request.headers["User-Agent"].startswith("packyard/")
    assert page.source == "pypi"
    assert page.files[0].url == upstream.url + "/files/demo-1.0-py3-none-any.whl"


async def test_html_page_resolves_against_the_final_url_after_redirects(servers: Servers) -> None:
    async def mirror_page(request: web.BaseRequest) -> web.StreamResponse:
        html = b'<a href="../f/demo-1.0.tar.gz#sha256=' + SHA.encode() + b'">demo-1.0.tar.gz</a>'
        return response(html, headers={"Content-Type": "text/html"})

    mirror = await servers.start(mirror_page)

    async def moved(request: web.BaseRequest) -> web.StreamResponse:
        return response(status=301, headers={"Location": mirror.url + "/x/demo/"})

    upstream = await index(servers, moved)
    mirror_host = mirror.url.removeprefix("http://")
    page = await upstream.repository(file_hosts=(mirror_host,)).get_project("demo", ANONYMOUS)
    assert page.files[0].url == mirror.url + "/x/f/demo-1.0.tar.gz"
    assert page.files[0].sha256 == SHA
    assert [request.path for request in mirror.requests] == ["/x/demo/"]


async def test_gzip_pages_are_decoded(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        body = gzip.compress(project_json("demo-1.0.tar.gz"))
        return response(body, headers={"Content-Type": JSON, "Content-Encoding": "gzip"})

    upstream = await index(servers, handler)
    page = await upstream.repository().get_project("demo", ANONYMOUS)
    assert [dist.filename for dist in page.files] == ["demo-1.0.tar.gz"]
    assert "gzip" in upstream.requests[0].headers["Accept-Encoding"]


async def test_html_pages_are_decoded_with_their_charset(servers: Servers) -> None:
    body = '<a href="django/">Django</a><a href="six/">six</a>'.encode("utf-16")
    handler = serve(body, "text/html; charset=utf-16")
    listing = await (await index(servers, handler)).repository().list_projects(ANONYMOUS)
    assert [entry.name for entry in listing.projects] == ["Django", "six"]


@pytest.mark.parametrize("status", [404, 410])
async def test_missing_project(servers: Servers, status: int) -> None:
    upstream = await index(servers, serve(b"Not Found", "text/plain", status))
    with pytest.raises(ProjectNotFound):
        await upstream.repository().get_project("nope", ANONYMOUS)


@pytest.mark.parametrize(
    ("handler", "error", "words"),
    [
        (serve(b"{nope"), UpstreamError, "unreadable page"),
        (serve(project_json(version="2.0")), UpstreamError, "2.0"),
        (serve(b"{}", "application/json"), UpstreamError, "application/json"),
        (serve(b"denied", "text/plain", 401), UpstreamError, "credentials"),
        (serve(b"denied", "text/plain", 403), UpstreamError, "credentials"),
        (serve(b"", "text/plain", 400), UpstreamError, "HTTP 400"),
        (serve(b"", "text/plain", 503), UpstreamUnavailable, "HTTP 503"),
        (serve(b"", "text/plain", 429), UpstreamUnavailable, "HTTP 429"),
    ],
)
async def test_bad_answers_are_upstream_errors(
    servers: Servers, handler: Handler, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words) as caught:
        await (await index(servers, handler)).repository().get_project("demo", ANONYMOUS)
    assert str(caught.value).startswith("Upstream pypi:")
    if error is UpstreamError:
        assert not isinstance(caught.value, UpstreamUnavailable)


async def test_a_page_over_the_size_limit_is_refused(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "MAX_PAGE_BYTES", 10_000)

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return await streamed(request, b" " * 50_000, headers={"Content-Type": JSON})

    with pytest.raises(UpstreamError, match="larger than 10000 bytes"):
        await (await index(servers, handler)).repository().get_project("demo", ANONYMOUS)


async def test_connection_refused_is_unavailable() -> None:
    settings = UpstreamSettings(url=refused_url(), name="pypi")
    repository = UpstreamRepository(settings, make_upstream_client(settings))
    try:
        with pytest.raises(
            UpstreamUnavailable,
            match=r"could not be reached: cannot connect to .*Connection refused",
        ):
            await repository.get_project("demo", ANONYMOUS)
    finally:
        await repository.aclose()


async def test_timeout_is_unavailable_for_the_list_too(servers: Servers) -> None:
    async def slow(request: web.BaseRequest) -> web.StreamResponse:
        await asyncio.sleep(2)
        return response(b"", headers={"Content-Type": "text/html"})

    repository = (await index(servers, slow)).repository(timeout=0.2)
    with anyio.fail_after(1.5):
        with pytest.raises(UpstreamUnavailable, match="could not be reached: timed out"):
            await repository.list_projects(ANONYMOUS)


async def test_redirects_are_followed_up_to_a_limit(servers: Servers) -> None:
    async def chain(request: web.BaseRequest) -> web.StreamResponse:
        left = int(request.path.split("/")[2])  # /simple/<redirects left>/
        if left == 0:
            filename = f"{MAX_REDIRECTS}-1.0.tar.gz"  # a file of the project asked for
            return response(project_json(filename), headers={"Content-Type": JSON})
        return response(status=302, headers={"Location": f"/simple/{left - 1}/"})

    upstream = await index(servers, chain)
    repository = upstream.repository()
    page = await repository.get_project(str(MAX_REDIRECTS), ANONYMOUS)
    assert [dist.filename for dist in page.files] == [f"{MAX_REDIRECTS}-1.0.tar.gz"]
    assert page.files[0].url == upstream.url + f"/files/{MAX_REDIRECTS}-1.0.tar.gz"
    with pytest.raises(UpstreamError, match="redirects too many times") as caught:
        await repository.get_project(str(MAX_REDIRECTS + 1), ANONYMOUS)
    assert not isinstance(caught.value, UpstreamUnavailable)


async def test_etag_304_returns_the_same_object(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == '"v1"':
            return response(status=304, headers={"ETag": '"v1"'})
        headers = {"Content-Type": JSON, "ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024"}
        return response(project_json("demo-1.0.tar.gz"), headers=headers)

    upstream = await index(servers, handler)
    repository = upstream.repository(ttl=0)
    first = await repository.get_project("demo", ANONYMOUS)
    second = await repository.get_project("demo", ANONYMOUS)
    assert second is first
    assert len(upstream.requests) == 2
    assert upstream.requests[1].headers["If-Modified-Since"] == "Mon, 01 Jan 2024"


async def test_unchanged_body_without_etag_returns_the_same_object(servers: Servers) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0.tar.gz")))
    repository = upstream.repository(ttl=0)
    first = await repository.get_project("demo", ANONYMOUS)
    assert await repository.get_project("demo", ANONYMOUS) is first
    assert "If-None-Match" not in upstream.requests[1].headers


async def test_ttl_skips_the_request_until_it_expires(servers: Servers) -> None:
    clock = Clock()
    upstream = await index(servers, serve(project_json("demo-1.0.tar.gz")))
    repository = upstream.repository(ttl=60, clock=clock)
    first = await repository.get_project("demo", ANONYMOUS)
    clock.now += 59
    assert await repository.get_project("demo", ANONYMOUS) is first
    assert len(upstream.requests) == 1
    clock.now += 2
    await repository.get_project("demo", ANONYMOUS)
    assert len(upstream.requests) == 2


async def test_concurrent_calls_make_one_request(servers: Servers) -> None:
    arrived, release = anyio.Event(), anyio.Event()

    async def slow(request: web.BaseRequest) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return response(project_json("demo-1.0.tar.gz"), headers={"Content-Type": JSON})

    upstream = await index(servers, slow)
    repository = upstream.repository(ttl=0)
    results = []

    async def ask() -> None:
        results.append(await repository.get_project("demo", ANONYMOUS))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(ask)
        await arrived.wait()
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert len(upstream.requests) == 1
    assert len(results) == 10
    assert all(result is results[0] for result in results)


async def test_concurrent_callers_share_an_error(servers: Servers) -> None:
    upstream = await index(servers, serve(b"", "text/plain", 502))
    repository = upstream.repository()
    errors = []

    async def ask() -> None:
        try:
            await repository.get_project("demo", ANONYMOUS)
        except UpstreamUnavailable as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(ask)
    assert len(errors) == 3


async def test_remembered_projects_are_bounded(servers: Servers) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0.tar.gz")))
    settings = UpstreamSettings(url=upstream.base, name="pypi", page_ttl=600)
    client = servers.client(settings)
    repository = UpstreamRepository(settings, client, max_projects=2, clock=Clock())
    for name in ("a", "b", "a", "c", "a"):
        await repository.get_project(name, ANONYMOUS)
    assert [request.path for request in upstream.requests] == [
        "/simple/a/",
        "/simple/b/",
        "/simple/c/",
    ]


async def test_list_projects_with_etag(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == 'W/"l"':
            return response(status=304)
        body = b'<a href="django/">Django</a><a href="six/">six</a>'
        headers = {"Content-Type": "text/html; charset=utf-8", "ETag": 'W/"l"'}
        return response(body, headers=headers)

    upstream = await index(servers, handler)
    repository = upstream.repository()
    first = await repository.list_projects(ANONYMOUS)
    assert [entry.name for entry in first.projects] == ["Django", "six"]
    assert await repository.list_projects(ANONYMOUS) is first
    assert upstream.requests[0].path == "/simple/"


async def test_get_file_and_its_metadata(servers: Servers) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0-py3-none-any.whl")))
    repository = upstream.repository()
    wheel = await repository.get_file("demo", "demo-1.0-py3-none-any.whl", ANONYMOUS)
    assert isinstance(wheel, RemoteFile)
    assert wheel.url == upstream.url + "/files/demo-1.0-py3-none-any.whl"
    assert (wheel.sha256, wheel.size, wheel.upstream) == (SHA, 10, "pypi")
    metadata = await repository.get_file("demo", "demo-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert metadata.url == upstream.url + "/files/demo-1.0-py3-none-any.whl.metadata"
    assert metadata.sha256 == META_SHA


@pytest.mark.parametrize("filename", ["demo-9.0.tar.gz", "demo-1.0.tar.gz.metadata"])
async def test_get_file_not_listed(servers: Servers, filename: str) -> None:
    repository = (await index(servers, serve(project_json("demo-1.0.tar.gz")))).repository()
    with pytest.raises(FileNotFound):
        await repository.get_file("demo", filename, ANONYMOUS)


# --- files -----------------------------------------------------------------------------


def file_server(content: bytes, honour_ranges: bool) -> Handler:
    """Serves `content` in 1000-byte writes, honouring Range headers or not."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        wanted = request.headers.get("Range")
        if wanted is None or not honour_ranges:
            headers = {"Content-Length": str(len(content))}
            return await streamed(request, content, headers=headers)
        start, end = (int(part) for part in wanted.removeprefix("bytes=").split("-"))
        headers = {"Content-Range": f"bytes {start}-{end}/{len(content)}"}
        return await streamed(request, content[start : end + 1], status=206, headers=headers)

    return handler


async def opener_for(
    servers: Servers, handler: Handler, file_hosts: tuple[str, ...] | None = None
) -> tuple[UpstreamOpener, FakeUpstream]:
    """An opener and the server whose URLs it opens (`server.url + "/f.whl"`)."""
    server = await servers.start(handler)
    settings = UpstreamSettings(url=server.url + "/simple/", name="pypi", file_hosts=file_hosts)
    return UpstreamOpener(servers.client(settings), "pypi"), server


async def read(
    opener: UpstreamOpener, url: str, byte_range: ByteRange | None
) -> tuple[int | None, bytes]:
    async with opener.open(url, byte_range) as body:
        return body.size, await chunks_of(body.chunks)


@pytest.mark.parametrize("honour_ranges", [True, False])
async def test_opener_ranges_with_206_and_with_a_200_fallback(
    servers: Servers, honour_ranges: bool
) -> None:
    content = bytes(range(256)) * 40
    opener, server = await opener_for(servers, file_server(content, honour_ranges))
    url = server.url + "/demo-1.0.whl"
    assert await read(opener, url, None) == (len(content), content)
    assert await read(opener, url, ByteRange(1000, 5000)) == (len(content), content[1000:5001])
    assert await read(opener, url, ByteRange(0, 0)) == (len(content), content[:1])
    assert [request.headers.get("Range") for request in server.requests] == [
        None,
        "bytes=1000-5000",
        "bytes=0-0",
    ]
    assert {request.headers["Accept-Encoding"] for request in server.requests} == {"identity"}


async def test_opener_rejects_a_206_for_another_range(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return response(b"xx", 206, {"Content-Range": "bytes 5-6/100"})

    opener, server = await opener_for(servers, handler)
    with pytest.raises(UpstreamError, match="bytes 5-6/100"):
        await read(opener, server.url + "/f.whl", ByteRange(0, 1))


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (404, {}, FileNotFound),
        (410, {}, FileNotFound),
        (416, {"Content-Range": "bytes */10"}, RangeNotSatisfiable),
        (500, {}, UpstreamUnavailable),
        (429, {}, UpstreamUnavailable),
        (403, {}, UpstreamError),
    ],
)
async def test_opener_statuses(
    servers: Servers, status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return response(b"no", status, headers)

    opener, server = await opener_for(servers, handler)
    with pytest.raises(error) as caught:
        await read(opener, server.url + "/f.whl", None)
    if error is UpstreamError:
        assert not isinstance(caught.value, UpstreamUnavailable)
    if error is RangeNotSatisfiable:
        assert isinstance(caught.value, RangeNotSatisfiable)
        assert caught.value.size == 10


async def test_opener_connection_error_is_unavailable(servers: Servers) -> None:
    settings = UpstreamSettings(url=refused_url(), name="pypi")
    opener = UpstreamOpener(servers.client(settings), "pypi")
    with pytest.raises(UpstreamUnavailable, match=r"could not be reached: .*refused"):
        await read(opener, settings.url + "f.whl", None)


async def test_opener_follows_redirects(servers: Servers) -> None:
    content = b"wheel" * 1000
    cdn = await servers.start(file_server(content, honour_ranges=True))

    async def moved(request: web.BaseRequest) -> web.StreamResponse:
        return response(status=302, headers={"Location": cdn.url + "/real.whl"})

    opener, server = await opener_for(servers, moved, (cdn.url.removeprefix("http://"),))
    assert await read(opener, server.url + "/f.whl", ByteRange(5, 9)) == (len(content), b"wheel")
    assert cdn.requests[0].headers["Range"] == "bytes=5-9"


async def test_opener_refuses_a_redirect_to_another_host(servers: Servers) -> None:
    elsewhere = await servers.start(file_server(b"internal", honour_ranges=True))

    async def moved(request: web.BaseRequest) -> web.StreamResponse:
        return response(status=302, headers={"Location": elsewhere.url + "/secret"})

    opener, server = await opener_for(servers, moved)
    with pytest.raises(UpstreamError, match="not on its own host or file hosts") as caught:
        await read(opener, server.url + "/f.whl", None)
    assert not isinstance(caught.value, UpstreamUnavailable)  # a 502: retrying will not help
    assert elsewhere.requests == []


async def test_opener_never_decodes_a_file(servers: Servers) -> None:
    packed = gzip.compress(b"a tarball, already compressed" * 100)

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-tar"}
        return response(packed, headers=headers)

    opener, server = await opener_for(servers, handler)
    assert await read(opener, server.url + "/demo-1.0.tar.gz", None) == (len(packed), packed)
    assert server.requests[0].headers["Accept-Encoding"] == "identity"


async def test_opener_chunks_are_bounded_however_much_arrived_at_once(servers: Servers) -> None:
    content = os.urandom(5 * CHUNK_SIZE + 123)

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return response(content)

    opener, server = await opener_for(servers, handler)
    async with opener.open(server.url + "/f.whl", None) as body:
        await anyio.sleep(0.1)  # all of it is in the client's buffer by now
        chunks = [chunk async for chunk in body.chunks]
    assert b"".join(chunks) == content
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE


async def test_opener_cuts_a_wider_206_and_always_closes_the_response(servers: Servers) -> None:
    closed = anyio.Event()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        reply = web.StreamResponse(status=206, headers={"Content-Range": "bytes 0-15/*"})
        await reply.prepare(request)
        await reply.write(b"0123456789")
        await reply.write(b"abcdef")
        try:
            while True:  # the body never ends: only the client hanging up ends this
                await asyncio.sleep(0.01)
                await reply.write(b"-")
        except ConnectionError:
            closed.set()
        return reply

    opener, server = await opener_for(servers, handler)
    assert await read(opener, server.url + "/x", ByteRange(8, 11)) == (None, b"89ab")
    with anyio.fail_after(5):
        await closed.wait()


async def test_opener_body_ending_early_is_unavailable(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        headers = {"Content-Range": "bytes 0-9/10"}
        return await streamed(request, b"abc", status=206, headers=headers)

    opener, server = await opener_for(servers, handler)
    with pytest.raises(UpstreamUnavailable, match="7 bytes early"):
        await read(opener, server.url + "/x", ByteRange(0, 9))


async def test_opener_connection_dropped_mid_body_is_unavailable(servers: Servers) -> None:
    """The bytes read before the break are delivered, then the error: a broken
    transfer, as an HTTP client sees it."""
    sent = os.urandom(30_000)

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Length": "100000"})
        await reply.prepare(request)
        await reply.write(sent)
        await asyncio.sleep(0.2)
        assert request.transport is not None
        request.transport.close()
        return reply

    opener, server = await opener_for(servers, handler)
    received: list[bytes] = []

    async def receive(chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            received.append(chunk)

    async with opener.open(server.url + "/f.whl", None) as body:
        assert body.size == 100_000
        with pytest.raises(UpstreamUnavailable, match="broke off the response"):
            await receive(body.chunks)
    assert b"".join(received) == sent


async def test_opener_read_timeout_mid_body_is_unavailable(servers: Servers) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Length": "100"})
        await reply.prepare(request)
        await reply.write(b"x" * 10)
        await asyncio.sleep(2)
        return reply

    server = await servers.start(handler)
    settings = UpstreamSettings(url=server.url + "/simple/", name="pypi", timeout=0.2)
    opener = UpstreamOpener(servers.client(settings), "pypi")
    with anyio.fail_after(1.5):
        async with opener.open(server.url + "/f.whl", None) as body:
            with pytest.raises(UpstreamUnavailable, match="timed out"):
                await chunks_of(body.chunks)


# --- the client ------------------------------------------------------------------------


def test_client_factory_makes_no_session_until_a_request() -> None:
    """Built outside any event loop, as `compose.py` builds the chain: no session yet."""
    client = make_upstream_client(UpstreamSettings(url="https://upstream.test/", timeout=5))
    assert client.headers["User-Agent"].startswith("packyard/")
    assert (client.timeout.sock_read, client.timeout.sock_connect) == (5, 5)
    assert client.timeout.total is None  # a long download is bounded per read only
    slow = make_upstream_client(UpstreamSettings(url="https://upstream.test/", timeout=60))
    assert (slow.timeout.sock_read, slow.timeout.sock_connect) == (60, 10)


async def test_the_session_is_opened_once_and_closed_by_aclose(servers: Servers) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0.tar.gz")))
    repository = upstream.repository()
    await repository.get_project("demo", ANONYMOUS)
    session = repository.client.session
    await repository.get_project("other", ANONYMOUS)
    assert repository.client.session is session
    await repository.aclose()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await repository.get_project("third", ANONYMOUS)


async def test_proxy_variables_are_honoured(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await servers.start(serve(project_json("demo-1.0.tar.gz")))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # Never resolved here: the proxy is asked for it.
    settings = UpstreamSettings(url="http://upstream.test/simple/", name="pypi")
    repository = UpstreamRepository(settings, servers.client(settings))
    page = await repository.get_project("demo", ANONYMOUS)
    assert page.files[0].url == "http://upstream.test/files/demo-1.0.tar.gz"
    (request,) = proxy.requests
    assert request.headers["Host"] == "upstream.test"
    assert request.path == "/simple/demo/"


async def test_no_proxy_goes_direct(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = await index(servers, serve(project_json("demo-1.0.tar.gz")))
    monkeypatch.setenv("HTTP_PROXY", refused_url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    page = await upstream.repository().get_project("demo", ANONYMOUS)
    assert [dist.filename for dist in page.files] == ["demo-1.0.tar.gz"]
    assert len(upstream.requests) == 1


async def test_credentials_in_the_upstream_url_are_sent_but_never_shown(servers: Servers) -> None:
    upstream = await index(servers, serve(b"denied", "text/plain", 403))
    url = upstream.base.replace("http://", "http://ci:s3cret@")
    settings = UpstreamSettings(url=url, name="pypi")
    repository = UpstreamRepository(settings, servers.client(settings))
    with pytest.raises(UpstreamError, match="credentials") as caught:
        await repository.get_project("demo", ANONYMOUS)
    assert "s3cret" not in str(caught.value)
    expected = "Basic " + base64.b64encode(b"ci:s3cret").decode()
    assert upstream.requests[0].headers["Authorization"] == expected
