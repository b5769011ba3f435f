"""UpstreamRepository over an in-memory transport (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest

from packyard.errors import (
    FileNotFound,
    ProjectNotFound,
    RangeNotSatisfiable,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.model import ANONYMOUS, ByteRange, RemoteFile, SuffixRange
from packyard.repository.upstream import (
    ACCEPT,
    UpstreamRepository,
    make_upstream_client,
)
from packyard.repository.upstream_opener import UpstreamOpener
from packyard.settings import UpstreamSettings

pytestmark = pytest.mark.anyio

BASE = "https://upstream.test/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
SHA = "a" * 64
META_SHA = "b" * 64
Handler = Callable[[httpx.Request], httpx.Response]


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


class Upstream:
    """A fake index: counts requests and answers with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def repository(self, ttl: float = 0.0, clock: Clock | None = None) -> UpstreamRepository:
        settings = UpstreamSettings(url=BASE, name="pypi", page_ttl=ttl)
        client = httpx.AsyncClient(transport=httpx.MockTransport(self), follow_redirects=True)
        return UpstreamRepository(settings, client, clock=clock or Clock())


def serve(body: bytes, content_type: str = JSON, status: int = 200, **headers: str) -> Handler:
    return lambda request: httpx.Response(
        status, content=body, headers={"Content-Type": content_type, **headers}
    )


async def test_json_page_is_read_and_negotiated() -> None:
    upstream = Upstream(serve(project_json("demo-1.0-py3-none-any.whl")))
    page = await upstream.repository().get_project("demo", ANONYMOUS)
    (request,) = upstream.requests
    assert str(request.url) == BASE + "demo/"
    assert request.headers["Accept"] == ACCEPT
    assert page.source == "pypi"
    assert page.files[0].url == "https://upstream.test/files/demo-1.0-py3-none-any.whl"


async def test_html_page_resolves_against_the_final_url_after_redirects() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "upstream.test":
            return httpx.Response(301, headers={"Location": "https://mirror.test/x/demo/"})
        html = b'<a href="../f/demo-1.0.tar.gz#sha256=' + SHA.encode() + b'">demo-1.0.tar.gz</a>'
        return httpx.Response(200, content=html, headers={"Content-Type": "text/html"})

    page = await Upstream(handler).repository().get_project("demo", ANONYMOUS)
    assert page.files[0].url == "https://mirror.test/x/f/demo-1.0.tar.gz"
    assert page.files[0].sha256 == SHA


@pytest.mark.parametrize("status", [404, 410])
async def test_missing_project(status: int) -> None:
    upstream = Upstream(serve(b"Not Found", "text/plain", status))
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
    handler: Handler, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words) as caught:
        await Upstream(handler).repository().get_project("demo", ANONYMOUS)
    assert str(caught.value).startswith("Upstream pypi:")
    if error is UpstreamError:
        assert not isinstance(caught.value, UpstreamUnavailable)


async def test_connection_refused_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(UpstreamUnavailable, match="could not be reached: Connection refused"):
        await Upstream(refuse).repository().get_project("demo", ANONYMOUS)


async def test_timeout_is_unavailable_for_the_list_too() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(UpstreamUnavailable, match="timed out"):
        await Upstream(slow).repository().list_projects(ANONYMOUS)


async def test_etag_304_returns_the_same_object() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        headers = {"Content-Type": JSON, "ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024"}
        return httpx.Response(200, content=project_json("demo-1.0.tar.gz"), headers=headers)

    upstream = Upstream(handler)
    repository = upstream.repository(ttl=0)
    first = await repository.get_project("demo", ANONYMOUS)
    second = await repository.get_project("demo", ANONYMOUS)
    assert second is first
    assert len(upstream.requests) == 2
    assert upstream.requests[1].headers["If-Modified-Since"] == "Mon, 01 Jan 2024"


async def test_unchanged_body_without_etag_returns_the_same_object() -> None:
    upstream = Upstream(serve(project_json("demo-1.0.tar.gz")))
    repository = upstream.repository(ttl=0)
    first = await repository.get_project("demo", ANONYMOUS)
    assert await repository.get_project("demo", ANONYMOUS) is first
    assert "If-None-Match" not in upstream.requests[1].headers


async def test_ttl_skips_the_request_until_it_expires() -> None:
    clock = Clock()
    upstream = Upstream(serve(project_json("demo-1.0.tar.gz")))
    repository = upstream.repository(ttl=60, clock=clock)
    first = await repository.get_project("demo", ANONYMOUS)
    clock.now += 59
    assert await repository.get_project("demo", ANONYMOUS) is first
    assert len(upstream.requests) == 1
    clock.now += 2
    await repository.get_project("demo", ANONYMOUS)
    assert len(upstream.requests) == 2


async def test_concurrent_calls_make_one_request() -> None:
    release = anyio.Event()

    class SlowTransport(httpx.AsyncBaseTransport):
        count = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.count += 1
            await release.wait()
            body = project_json("demo-1.0.tar.gz")
            return httpx.Response(200, content=body, headers={"Content-Type": JSON})

    transport = SlowTransport()
    settings = UpstreamSettings(url=BASE, name="pypi", page_ttl=0)
    repository = UpstreamRepository(settings, httpx.AsyncClient(transport=transport))
    results = []

    async def ask() -> None:
        results.append(await repository.get_project("demo", ANONYMOUS))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert transport.count == 1
    assert len(results) == 10
    assert all(result is results[0] for result in results)


async def test_concurrent_callers_share_an_error() -> None:
    upstream = Upstream(serve(b"", "text/plain", 502))
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


async def test_remembered_projects_are_bounded() -> None:
    upstream = Upstream(serve(project_json("demo-1.0.tar.gz")))
    settings = UpstreamSettings(url=BASE, name="pypi", page_ttl=600)
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    repository = UpstreamRepository(settings, client, max_projects=2, clock=Clock())
    for name in ("a", "b", "a", "c", "a"):
        await repository.get_project(name, ANONYMOUS)
    assert [request.url.path for request in upstream.requests] == [
        "/simple/a/",
        "/simple/b/",
        "/simple/c/",
    ]


async def test_list_projects_with_etag() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == 'W/"l"':
            return httpx.Response(304)
        body = b'<a href="django/">Django</a><a href="six/">six</a>'
        headers = {"Content-Type": "text/html; charset=utf-8", "ETag": 'W/"l"'}
        return httpx.Response(200, content=body, headers=headers)

    upstream = Upstream(handler)
    repository = upstream.repository()
    first = await repository.list_projects(ANONYMOUS)
    assert [entry.name for entry in first.projects] == ["Django", "six"]
    assert await repository.list_projects(ANONYMOUS) is first
    assert str(upstream.requests[0].url) == BASE


async def test_get_file_and_its_metadata() -> None:
    repository = Upstream(serve(project_json("demo-1.0-py3-none-any.whl"))).repository()
    wheel = await repository.get_file("demo", "demo-1.0-py3-none-any.whl", ANONYMOUS)
    assert isinstance(wheel, RemoteFile)
    assert wheel.url == "https://upstream.test/files/demo-1.0-py3-none-any.whl"
    assert (wheel.sha256, wheel.size, wheel.upstream) == (SHA, 10, "pypi")
    metadata = await repository.get_file("demo", "demo-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert metadata.url == "https://upstream.test/files/demo-1.0-py3-none-any.whl.metadata"
    assert metadata.sha256 == META_SHA


@pytest.mark.parametrize("filename", ["demo-9.0.tar.gz", "demo-1.0.tar.gz.metadata"])
async def test_get_file_not_listed(filename: str) -> None:
    repository = Upstream(serve(project_json("demo-1.0.tar.gz"))).repository()
    with pytest.raises(FileNotFound):
        await repository.get_file("demo", filename, ANONYMOUS)


async def streamed(content: bytes) -> AsyncIterator[bytes]:
    """A body in 1000-byte chunks, as a real transport streams it."""
    for start in range(0, len(content), 1000):
        yield content[start : start + 1000]


def file_server(content: bytes, honour_ranges: bool) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        wanted = request.headers.get("Range")
        if wanted is None or not honour_ranges:
            headers = {"Content-Length": str(len(content))}
            return httpx.Response(200, content=streamed(content), headers=headers)
        first, last = wanted.removeprefix("bytes=").split("-")
        if first:
            start, end = int(first), int(last)
        else:  # a suffix: the last N bytes
            start, end = max(len(content) - int(last), 0), len(content) - 1
        headers = {"Content-Range": f"bytes {start}-{end}/{len(content)}"}
        return httpx.Response(206, content=streamed(content[start : end + 1]), headers=headers)

    return handler


async def read(
    opener: UpstreamOpener, url: str, byte_range: ByteRange | SuffixRange | None
) -> tuple[int | None, bytes]:
    async with opener.open(url, byte_range) as body:
        return body.size, b"".join([chunk async for chunk in body.chunks])


def opener_for(handler: Handler) -> UpstreamOpener:
    return UpstreamOpener(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "pypi")


@pytest.mark.parametrize("honour_ranges", [True, False])
async def test_opener_ranges_with_206_and_with_a_200_fallback(honour_ranges: bool) -> None:
    content = bytes(range(256)) * 40
    opener = opener_for(file_server(content, honour_ranges))
    url = "https://files.test/demo-1.0.whl"
    assert await read(opener, url, None) == (len(content), content)
    assert await read(opener, url, ByteRange(1000, 5000)) == (len(content), content[1000:5001])
    assert await read(opener, url, ByteRange(0, 0)) == (len(content), content[:1])


@pytest.mark.parametrize("honour_ranges", [True, False])
async def test_opener_suffix_ranges_give_the_end_and_the_size(honour_ranges: bool) -> None:
    content = bytes(range(256)) * 40
    opener = opener_for(file_server(content, honour_ranges))
    url = "https://files.test/demo-1.0.whl"
    async with opener.open(url, SuffixRange(3000)) as body:
        assert (body.size, body.ranged) == (len(content), honour_ranges)
        assert b"".join([chunk async for chunk in body.chunks]) == content[-3000:]
    # Longer than the file: all of it.
    assert await read(opener, url, SuffixRange(99_999)) == (len(content), content)


async def test_opener_cuts_a_200_of_unknown_length_to_its_end() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=streamed(b"0123456789" * 300))

    async with opener_for(handler).open("https://files.test/f.whl", SuffixRange(15)) as body:
        assert (body.size, body.ranged) == (None, False)
        assert b"".join([chunk async for chunk in body.chunks]) == b"567890123456789"


@pytest.mark.parametrize(
    "content_range", ["bytes 0-9/100", "bytes 90-98/100", "bytes 90-99/*", "bytes 95-99/100", ""]
)
async def test_opener_rejects_a_206_that_is_not_the_end_asked_for(content_range: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Range"] == "bytes=-10"
        return httpx.Response(206, content=b"x" * 10, headers={"Content-Range": content_range})

    with pytest.raises(UpstreamError, match="last bytes"):
        await read(opener_for(handler), "https://files.test/f.whl", SuffixRange(10))


async def test_opener_rejects_a_206_for_another_range() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, content=b"xx", headers={"Content-Range": "bytes 5-6/100"})

    with pytest.raises(UpstreamError, match="bytes 5-6/100"):
        await read(opener_for(handler), "https://files.test/f.whl", ByteRange(0, 1))


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404), FileNotFound),
        (httpx.Response(416, headers={"Content-Range": "bytes */10"}), RangeNotSatisfiable),
        (httpx.Response(500), UpstreamUnavailable),
        (httpx.Response(403), UpstreamError),
    ],
)
async def test_opener_statuses(response: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        await read(opener_for(lambda request: response), "https://files.test/f.whl", None)


async def test_opener_connection_error_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamUnavailable, match="refused"):
        await read(opener_for(refuse), "https://files.test/f.whl", None)


def test_client_factory() -> None:
    settings = UpstreamSettings(url=BASE, timeout=5)
    client = make_upstream_client(settings)
    assert client.headers["User-Agent"].startswith("packyard/")
    assert client.follow_redirects
    assert client.timeout.read == 5


async def test_opener_cuts_a_wider_206_and_always_closes_the_response() -> None:
    closed = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"0123456789"
            yield b"abcdef"

        async def aclose(self) -> None:
            closed.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, stream=Body(), headers={"Content-Range": "bytes 0-15/*"})

    assert await read(opener_for(handler), "https://f.test/x", ByteRange(8, 11)) == (None, b"89ab")
    assert closed == [True]


async def test_opener_body_ending_early_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            206, content=streamed(b"abc"), headers={"Content-Range": "bytes 0-9/10"}
        )

    with pytest.raises(UpstreamUnavailable, match="7 bytes early"):
        await read(opener_for(handler), "https://f.test/x", ByteRange(0, 9))
