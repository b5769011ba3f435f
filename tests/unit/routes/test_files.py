"""Unit tests of the `/files/` route, over an in-memory chain of each resource kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from typing_extensions import override

from packyard.errors import (
    FileNotFound,
    PackyardError,
    ProjectNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.model import (
    ByteRange,
    InlineFile,
    ProjectDetail,
    ProjectList,
    RemoteBody,
    RemoteFile,
    RequestContext,
    Resource,
    StoredFile,
)
from packyard.repository.base import Repository
from packyard.routes.files import FilesRoute
from packyard.routes.ranges import parse_range
from packyard.storage.filesystem import FilesystemBlobStore
from tests.unit.fakes import part_of

CONTENT = bytes(i % 251 for i in range(1000))
SHA = sha256(CONTENT).hexdigest()
ETAG = f'"{SHA}"'
MODIFIED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LAST_MODIFIED = "Mon, 06 May 2024 07:08:09 GMT"
URL = "/files/demo/demo-1.0-py3-none-any.whl"
KINDS = ["inline", "stored", "remote", "remote-probe"]


class MemoryStore:
    """A BlobReader over a dict, yielding small chunks; records what it was asked."""

    def __init__(self, blobs: dict[str, bytes], local: Path | None = None) -> None:
        self.blobs = blobs
        self.local = local
        self.reads: list[ByteRange | None] = []
        self.closed = 0

    async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        self.reads.append(byte_range)
        data = self.blobs[key]
        if byte_range is not None:
            data = data[byte_range.start : byte_range.end + 1]
        try:
            for start in range(0, len(data), 64):
                yield data[start : start + 64]
        finally:
            self.closed += 1

    def local_path(self, key: str) -> Path | None:
        return self.local


@dataclass
class FakeOpener:
    """A RemoteOpener that honours ranges, like the real upstream client."""

    content: bytes
    announce_size: bool = True
    error: PackyardError | None = None
    opened: list[ByteRange | None] = field(default_factory=list)
    closed: int = 0

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        self.opened.append(byte_range)
        if self.error is not None:
            raise self.error
        data = part_of(self.content, byte_range)
        size = len(self.content) if self.announce_size else None
        try:
            yield RemoteBody(size, _chunks(data))
        finally:
            self.closed += 1


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64):
        yield data[start : start + 64]


class FakeChain(Repository):
    """A chain that serves one resource (or raises one error) for every file."""

    def __init__(self, resource: Resource | None = None, error: PackyardError | None = None):
        self.resource = resource
        self.error = error
        self.calls: list[tuple[str, str, RequestContext]] = []

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        return ProjectList(())

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        raise ProjectNotFound(name)

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        self.calls.append((name, filename, ctx))
        if self.error is not None:
            raise self.error
        assert self.resource is not None
        return self.resource


def make_resource(kind: str, content: bytes = CONTENT) -> Resource:
    digest = sha256(content).hexdigest()
    name = "demo-1.0-py3-none-any.whl"
    if kind == "inline":
        return InlineFile(name, content, digest, modified=MODIFIED)
    if kind == "stored":
        store = MemoryStore({"k": content})
        return StoredFile(name, "k", len(content), digest, store, modified=MODIFIED)
    size = len(content) if kind == "remote" else None
    opener = FakeOpener(content)
    return RemoteFile(name, "https://up/x.whl", opener, "up", digest, size, modified=MODIFIED)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def client_for(chain: Repository) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=FilesRoute(chain))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def fetch(
    resource: Resource, headers: dict[str, str] | None = None, method: str = "GET"
) -> httpx.Response:
    async with client_for(FakeChain(resource)) as client:
        return await client.request(method, URL, headers=headers)


def assert_file_headers(response: httpx.Response, length: int) -> None:
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(length)
    assert response.headers["etag"] == ETAG
    assert response.headers["last-modified"] == LAST_MODIFIED
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"] == "application/octet-stream"
    assert "content-encoding" not in response.headers


# --- whole files, GET and HEAD ----------------------------------------------------


@pytest.mark.anyio
async def test_get_serves_the_whole_file(kind: str) -> None:
    response = await fetch(make_resource(kind), {"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.content == CONTENT
    assert_file_headers(response, len(CONTENT))


@pytest.mark.anyio
async def test_head_has_the_headers_of_get_and_no_body(kind: str) -> None:
    get = await fetch(make_resource(kind))
    head = await fetch(make_resource(kind), method="HEAD")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers.multi_items() == get.headers.multi_items()


@pytest.mark.anyio
async def test_head_of_a_sized_remote_file_does_not_contact_the_upstream() -> None:
    resource = make_resource("remote")
    assert isinstance(resource, RemoteFile)
    assert isinstance(resource.opener, FakeOpener)
    response = await fetch(resource, method="HEAD")
    assert response.headers["content-length"] == str(len(CONTENT))
    assert resource.opener.opened == []


@pytest.mark.anyio
async def test_empty_file() -> None:
    response = await fetch(make_resource("stored", b""))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


# --- byte ranges (RFC 9110 §14) -------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=900-", 900, 999),
        ("bytes=-100", 900, 999),
        ("bytes=999-999", 999, 999),
        ("bytes=990-5000", 990, 999),  # end past the file: clamped
        ("bytes=-5000", 0, 999),  # suffix longer than the file: all of it
        ("BYTES=10-19", 10, 19),  # the unit is case-insensitive
        ("bytes= 10-19 ,", 10, 19),  # list whitespace and empty elements
        ("bytes=0-99999999999999999999999", 0, 999),  # huge numbers
    ],
)
async def test_single_range_gets_206(kind: str, range_header: str, first: int, last: int) -> None:
    response = await fetch(make_resource(kind), {"range": range_header})
    assert response.status_code == 206
    assert response.content == CONTENT[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/1000"
    assert_file_headers(response, last - first + 1)


@pytest.mark.anyio
async def test_remote_range_is_asked_of_the_upstream() -> None:
    resource = make_resource("remote")
    assert isinstance(resource, RemoteFile)
    assert isinstance(resource.opener, FakeOpener)
    await fetch(resource, {"range": "bytes=-16"})
    assert resource.opener.opened == [ByteRange(984, 999)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "range_header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-1000"]
)
async def test_unsatisfiable_range_gets_416(kind: str, range_header: str) -> None:
    response = await fetch(make_resource(kind), {"range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1000"


@pytest.mark.anyio
async def test_any_range_of_an_empty_file_is_unsatisfiable() -> None:
    response = await fetch(make_resource("stored", b""), {"range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=0-1,5-6",  # several ranges: answered with the whole file
        "bytes=0-1, -5",
        "bytes=abc",
        "bytes=5-1",  # last below first: invalid
        "bytes=",
        "bytes=1-2-3",
        "bytes=+1-2",
        "items=0-1",  # another unit
        "0-1",
    ],
)
async def test_ignored_range_gets_the_whole_file(kind: str, range_header: str) -> None:
    response = await fetch(make_resource(kind), {"range": range_header})
    assert response.status_code == 200
    assert response.content == CONTENT
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=7-", (7, None)),
        ("bytes=-7", (None, 7)),
        ("bytes=\u00b2-3", None),  # a latin-1 digit that str.isdigit() would accept
        ("bytes=-", None),
        ("bytes=0-9,", (0, 9)),
        ("bytes=,,0-9", (0, 9)),
        ("bytes=0-9,10-19", None),
    ],
)
def test_parse_range(value: str, parsed: tuple[int | None, int | None] | None) -> None:
    assert parse_range(value) == parsed


@pytest.mark.anyio
async def test_head_ignores_range() -> None:
    # RFC 9110 §14.2: GET is the only method with range handling.
    response = await fetch(make_resource("stored"), {"range": "bytes=0-9"}, method="HEAD")
    assert response.status_code == 200
    assert response.headers["content-length"] == "1000"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        (ETAG, 206),
        (f"W/{ETAG}", 200),  # If-Range compares strongly only
        ('"something-else"', 200),
        (LAST_MODIFIED, 206),
        ("Mon, 06 May 2024 07:08:10 GMT", 200),  # a date must match exactly
        ("Sun, 05 May 2024 07:08:09 GMT", 200),
        ("not a date", 200),
    ],
)
async def test_if_range(kind: str, if_range: str, status: int) -> None:
    headers = {"range": "bytes=500-", "if-range": if_range}
    response = await fetch(make_resource(kind), headers)
    assert response.status_code == status
    assert response.content == (CONTENT[500:] if status == 206 else CONTENT)


# --- conditional requests (RFC 9110 §13) -------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if-none-match": ETAG}, 304),
        ({"if-none-match": f'"a", W/{ETAG}'}, 304),  # weak comparison
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": '"a", "b"'}, 200),
        ({"if-modified-since": LAST_MODIFIED}, 304),
        ({"if-modified-since": "Tue, 07 May 2024 00:00:00 GMT"}, 304),
        ({"if-modified-since": "Sun, 05 May 2024 00:00:00 GMT"}, 200),
        ({"if-modified-since": "garbage"}, 200),
        # If-Modified-Since is ignored when If-None-Match is present.
        ({"if-none-match": '"a"', "if-modified-since": LAST_MODIFIED}, 200),
        ({"if-match": ETAG}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": '"a"'}, 412),
        ({"if-match": f"W/{ETAG}"}, 412),  # If-Match compares strongly
        ({"if-unmodified-since": "Sun, 05 May 2024 00:00:00 GMT"}, 412),
        ({"if-unmodified-since": LAST_MODIFIED}, 200),
    ],
)
async def test_preconditions(kind: str, headers: dict[str, str], status: int) -> None:
    response = await fetch(make_resource(kind), headers)
    assert response.status_code == status
    if status == 200:
        assert response.content == CONTENT


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_not_modified_response(kind: str, method: str) -> None:
    resource = make_resource(kind)
    response = await fetch(resource, {"if-none-match": ETAG, "range": "bytes=0-1"}, method)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == ETAG
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-length" not in response.headers  # RFC 9110 §8.6
    if isinstance(resource, RemoteFile) and isinstance(resource.opener, FakeOpener):
        assert resource.opener.opened == []  # answered without the upstream


@pytest.mark.anyio
async def test_no_validators_no_validator_headers() -> None:
    resource = InlineFile("x.whl.metadata", b"Name: x\n", "", content_type="text/plain")
    response = await fetch(resource, {"if-none-match": '"a"'})
    assert response.status_code == 200
    assert "etag" not in response.headers
    assert "last-modified" not in response.headers
    assert response.headers["content-type"] == "text/plain"


# --- upstream files of unknown size --------------------------------------------------


def unsized_remote(*, announce_size: bool) -> tuple[RemoteFile, FakeOpener]:
    opener = FakeOpener(CONTENT, announce_size=announce_size)
    return RemoteFile("x.whl", "https://up/x.whl", opener, "up", SHA), opener


@pytest.mark.anyio
async def test_size_learned_from_the_upstream_allows_ranges() -> None:
    resource, opener = unsized_remote(announce_size=True)
    response = await fetch(resource, {"range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == CONTENT[10:20]
    assert response.headers["content-range"] == "bytes 10-19/1000"
    assert opener.opened == [None, ByteRange(10, 19)]
    assert opener.closed == 2


@pytest.mark.anyio
async def test_full_get_of_unsized_file_opens_the_upstream_once() -> None:
    resource, opener = unsized_remote(announce_size=True)
    response = await fetch(resource)
    assert response.content == CONTENT
    assert response.headers["content-length"] == "1000"
    assert opener.opened == [None]


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_size_unknown_everywhere_streams_without_length(method: str) -> None:
    resource, _ = unsized_remote(announce_size=False)
    response = await fetch(resource, {"range": "bytes=0-9"}, method)
    assert response.status_code == 200
    assert response.content == (CONTENT if method == "GET" else b"")
    assert "content-length" not in response.headers
    assert response.headers["accept-ranges"] == "none"


@pytest.mark.anyio
async def test_upstream_size_differing_from_the_index_is_a_502() -> None:
    opener = FakeOpener(CONTENT)
    resource = RemoteFile("x.whl", "https://up/x.whl", opener, "up", SHA, size=999)
    response = await fetch(resource)
    assert response.status_code == 502
    assert opener.closed == 1


# --- errors ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ProjectNotFound("demo"), 404),
        (FileNotFound("demo", "x.whl"), 404),
        (UpstreamError("up", "bad answer"), 502),
        (UpstreamUnavailable("up", "timed out"), 503),
    ],
)
@pytest.mark.parametrize("source", ["chain", "opener"])
async def test_domain_errors(error: PackyardError, status: int, source: str) -> None:
    if source == "chain":
        chain = FakeChain(error=error)
    else:
        opener = FakeOpener(CONTENT, error=error)
        chain = FakeChain(RemoteFile("x.whl", "https://up/x.whl", opener, "up", SHA, 1000))
    async with client_for(chain) as client:
        response = await client.get(URL)
    assert response.status_code == status
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == error.message + "\n"
    if status == 503:
        assert response.headers["retry-after"] == "30"


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_get_405(method: str) -> None:
    chain = FakeChain(make_resource("inline"))
    async with client_for(chain) as client:
        response = await client.request(method, URL)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert chain.calls == []


@pytest.mark.anyio
async def test_request_context_and_normalised_name() -> None:
    chain = FakeChain(make_resource("inline"))
    async with client_for(chain) as client:
        response = await client.get("/files/Demo_Pkg.X/a.whl?x=1", headers={"user-agent": "pip/26"})
    assert response.status_code == 200
    [(name, filename, ctx)] = chain.calls
    assert (name, filename) == ("demo-pkg-x", "a.whl")
    assert (ctx.client, ctx.user_agent) == ("127.0.0.1", "pip/26")


# --- path safety: driven with raw ASGI scopes, as httpx would normalise these -------------


@dataclass
class Exchange:
    """What an ASGI app sent for one request."""

    messages: list[MutableMapping[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def scope_for(path: str, raw_path: bytes | None, **extra: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "client": ("10.0.0.1", 5000),
        **extra,
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    return scope


async def call(app: FilesRoute, scope: dict[str, Any]) -> Exchange:
    """Run one request; like a server, `receive` blocks after the request until it ends."""
    exchange = Exchange()
    done = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:
            await done.wait()
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        exchange.messages.append(message)
        if message["type"] != "http.response.start" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    return exchange


UNSAFE_RAW_PATHS = [
    b"/files/../x",
    b"/files/a/..",
    b"/files/a/.",
    b"/files/%2e%2e/x.whl",
    b"/files/a/%2E%2E",
    b"/files/a%2Fb/c.whl",
    b"/files/a/b%2fc.whl",
    b"/files/a/b%5Cc.whl",
    b"/files/a/b\\c.whl",
    b"/files/a/b/c",
    b"/files//x",
    b"/files/a//x",
    b"/files/a/",
    b"/files/a",
    b"/files/",
    b"/files/a/b%00c.whl",
    b"/files/a/b%0ac.whl",
    b"/files/a/b\x01c.whl",
    b"/files/a/b%7fc.whl",
    b"/files/a/b%c2%85c.whl",  # C1 control (NEL)
    b"/files/a/C:x.whl",
    b"/files/a/b%ffc.whl",  # not UTF-8
    b"/files/-a/x.whl",  # not a valid project name
    b"/files/a_/x.whl",
    b"/files/%E2%84%AA/x.whl",  # KELVIN SIGN, which IGNORECASE would match as "k"
    b"/files/%2Fetc/passwd",
    b"/other/a/b",
]


@pytest.mark.anyio
@pytest.mark.parametrize("raw_path", UNSAFE_RAW_PATHS)
async def test_unsafe_raw_paths_get_404_without_touching_the_chain(raw_path: bytes) -> None:
    chain = FakeChain(make_resource("inline"))
    exchange = await call(FilesRoute(chain), scope_for("/files/a/b.whl", raw_path))
    assert exchange.status == 404
    assert chain.calls == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/files/../x", "/files/a/..", "/files/a/b/c", "/files//x", "/files/a/b\x00", "/x"]
)
async def test_unsafe_decoded_paths_get_404_without_raw_path(path: str) -> None:
    chain = FakeChain(make_resource("inline"))
    exchange = await call(FilesRoute(chain), scope_for(path, None))
    assert exchange.status == 404
    assert chain.calls == []


@pytest.mark.anyio
async def test_percent_encoded_filename_is_decoded() -> None:
    chain = FakeChain(make_resource("inline"))
    raw = b"/files/demo/demo-1.0%2Blocal-py3-none-any.whl"
    exchange = await call(FilesRoute(chain), scope_for("", raw))
    assert exchange.status == 200
    assert chain.calls[0][:2] == ("demo", "demo-1.0+local-py3-none-any.whl")


@pytest.mark.anyio
async def test_root_path_is_stripped() -> None:
    chain = FakeChain(make_resource("inline"))
    scope = scope_for("", b"/pkgs/files/demo/x.whl", root_path="/pkgs")
    exchange = await call(FilesRoute(chain), scope)
    assert exchange.status == 200
    assert chain.calls[0][:2] == ("demo", "x.whl")


# --- pathsend (ASGI extension) -------------------------------------------------------


def stored_with_path(tmp_path: Path) -> tuple[StoredFile, MemoryStore]:
    store = MemoryStore({"k": CONTENT}, local=tmp_path / "blob")
    return StoredFile("x.whl", "k", len(CONTENT), SHA, store), store


@pytest.mark.anyio
async def test_pathsend_is_used_when_the_server_advertises_it(tmp_path: Path) -> None:
    resource, store = stored_with_path(tmp_path)
    extensions: dict[str, object] = {"http.response.pathsend": {}}
    exchange = await call(
        FilesRoute(FakeChain(resource)), scope_for(URL, None, extensions=extensions)
    )
    assert exchange.status == 200
    assert exchange.messages[1] == {
        "type": "http.response.pathsend",
        "path": str(tmp_path / "blob"),
    }
    assert (b"content-length", b"1000") in exchange.messages[0]["headers"]
    assert store.reads == []


@pytest.mark.anyio
async def test_ranges_and_servers_without_pathsend_stream_from_the_store(tmp_path: Path) -> None:
    resource, store = stored_with_path(tmp_path)
    app = FilesRoute(FakeChain(resource))
    ranged = scope_for(URL, None, extensions={"http.response.pathsend": {}})
    ranged["headers"] = [(b"range", b"bytes=0-9")]
    exchange = await call(app, ranged)
    assert (exchange.status, exchange.body) == (206, CONTENT[:10])
    exchange = await call(app, scope_for(URL, None))  # uvicorn 0.54: no extensions
    assert (exchange.status, exchange.body) == (200, CONTENT)
    assert store.reads == [ByteRange(0, 9), None]


def test_uvicorn_does_not_advertise_pathsend() -> None:
    # If this starts failing, uvicorn added pathsend: _pathsend_path's comment is stale.
    uvicorn = Path(pytest.importorskip("uvicorn").__file__).parent
    sources = (path.read_text() for path in uvicorn.rglob("*.py"))
    assert not any("http.response.pathsend" in text for text in sources)


# --- client disconnects mid-stream ------------------------------------------------------


def disconnecting_client() -> tuple[Any, Any, list[MutableMapping[str, Any]]]:
    """receive/send of a client that disconnects after the first body chunk.

    Like uvicorn (ASGI 2.3), `send` then drops data silently.
    """
    sent: list[MutableMapping[str, Any]] = []
    gone = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if gone.is_set():
            return
        sent.append(message)
        if message["type"] == "http.response.body":
            gone.set()
        await anyio.lowlevel.checkpoint()

    return receive, send, sent


def slow_store() -> tuple[StoredFile, list[str]]:
    events: list[str] = []

    class EndlessStore:
        async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 64
                    await anyio.lowlevel.checkpoint()
            finally:
                events.append("closed")

    return StoredFile("x.whl", "k", 10**9, SHA, EndlessStore()), events


@pytest.mark.anyio
async def test_disconnect_stops_reading_and_closes_the_source() -> None:
    resource, events = slow_store()
    receive, send, sent = disconnecting_client()
    with anyio.fail_after(5):
        await FilesRoute(FakeChain(resource))(scope_for(URL, None), receive, send)
    assert events == ["closed"]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.anyio
async def test_disconnect_reported_by_send_stops_quietly() -> None:
    # ASGI spec 2.4 servers raise OSError from send once the client is gone.
    resource, events = slow_store()
    calls = 0

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise OSError("client gone")

    with anyio.fail_after(5):
        await FilesRoute(FakeChain(resource))(scope_for(URL, None), receive, send)
    assert events == ["closed"]


@pytest.mark.anyio
async def test_disconnect_closes_the_upstream_response() -> None:
    opener = FakeOpener(CONTENT * 100)
    resource = RemoteFile("x.whl", "https://up/x.whl", opener, "up", None, len(CONTENT) * 100)
    receive, send, _ = disconnecting_client()
    with anyio.fail_after(5):
        await FilesRoute(FakeChain(resource))(scope_for(URL, None), receive, send)
    assert opener.closed == 1


@pytest.mark.anyio
async def test_error_mid_stream_is_raised_to_the_server() -> None:
    class FailingStore:
        async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
            yield b"x"
            raise UpstreamError("up", "hash mismatch")

    resource = StoredFile("x.whl", "k", 2, SHA, FailingStore())
    with pytest.raises(UpstreamError):
        await call(FilesRoute(FakeChain(resource)), scope_for(URL, None))


# --- the blob storage behind stored files --------------------------------------------


@pytest.mark.anyio
async def test_a_stored_file_whose_blob_is_lost_is_a_503_naming_the_store(
    tmp_path: Path,
) -> None:
    """The database lists the file, the store lost its bytes (a bad restore): an
    operator's problem, said so, never a bare 500."""
    store = FilesystemBlobStore(tmp_path / "files")
    blob = await store.put("demo-1.0-py3-none-any.whl", CONTENT)
    await store.delete(blob.key)
    lost = StoredFile("demo-1.0-py3-none-any.whl", blob.key, len(CONTENT), blob.sha256, store)
    response = await fetch(lost)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert f"The blob store file://{tmp_path / 'files'} has lost the bytes of demo-1.0" in (
        response.text
    )
    assert "packyard verify" in response.text


@pytest.mark.anyio
async def test_stored_files_may_be_redirected_to_a_presigned_url() -> None:
    resource = make_resource("stored")

    async def presign(stored: StoredFile) -> str | None:
        return f"https://objects.example/{stored.key}?X-Amz-Signature=abc"

    async def get(served: Resource) -> httpx.Response:
        app = FilesRoute(FakeChain(served), redirect=presign)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(URL)

    response = await get(resource)
    inline = await get(make_resource("inline"))
    assert response.status_code == 302
    assert response.headers["location"] == "https://objects.example/k?X-Amz-Signature=abc"
    assert response.headers["cache-control"] == "private, no-store"
    assert inline.status_code == 200  # computed files (.metadata) are served here
