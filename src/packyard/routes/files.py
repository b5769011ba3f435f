"""The `/files/` route: distribution files and `.metadata` files, as raw ASGI.

`GET`/`HEAD /files/<project>/<filename>` asks the repository chain for the
file and serves it with the headers installers rely on (STANDARDS §4 "File
serving requirements"): identical headers for GET and HEAD, `Accept-Ranges:
bytes`, `Content-Length`, a strong ETag, Last-Modified, a year's immutable
max-age, single byte ranges with an exact Content-Range, If-Range, and never a
Content-Encoding. Conditional and range logic lives in `routes/ranges.py`; which
paths name a file is decided in `routes/paths.py`.

Bytes come from one of three resources: an `InlineFile` in memory, a
`StoredFile` in our blob storage, or a `RemoteFile` streamed from an upstream
through this server (never a redirect to an upstream: clients in a closed
network can only reach us). A site whose clients can reach its object store
may have stored files answered with a redirect to a presigned URL instead
(`[s3] presigned_downloads`): the bytes then bypass packyard entirely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
from starlette.types import Receive, Scope, Send

from packyard.errors import BlobMissing, FileDenied, PackyardError, UpstreamError
from packyard.model import (
    ByteRange,
    InlineFile,
    RemoteBody,
    RemoteFile,
    RequestContext,
    StoredFile,
)
from packyard.repository.base import Repository
from packyard.routes.asgi import Headers, request_header, send_response
from packyard.routes.errors import error_parts
from packyard.routes.paths import parse_file_path
from packyard.routes.ranges import (
    Validators,
    format_http_date,
    precondition_status,
    requested_range,
)
from packyard.routes.read_auth import IDENTITY

# Filenames are never reused, so a file never changes: cache it for a year.
CACHE_CONTROL = b"public, max-age=31536000, immutable"
PATHSEND = "http.response.pathsend"
SERVED = "packyard.served"
"""Scope key where the route leaves `(project, resource, RequestContext)` of the file
it serves, for wrappers that observe downloads (`telemetry/asgi.py`)."""
REFUSED = "packyard.refused"
"""Scope key where the route leaves the `FileDenied` it answered with 403, for the
same wrappers (a refused download of a file affected by known vulnerabilities)."""
UPSTREAM_FAILED = "packyard.upstream_failed"
"""Scope key where the route leaves the `UpstreamError` it answered with 502 or 503
when opening an upstream file the chain had handed it, for the same wrappers: the
chain's own observer (`telemetry/upstream.py`) never sees that failure."""
# The headers `routes/ranges.py` reads.
_CONDITIONAL = frozenset(
    {"range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)

Presigner = Callable[[StoredFile], Awaitable[str | None]]
"""Where to redirect a download of a stored file (a presigned URL), or None to stream it."""
BodyOpener = Callable[[ByteRange | None], AbstractAsyncContextManager[AsyncIterator[bytes]]]
"""Opens the bytes of a byte range (None: the whole file) as an async iterator."""


@dataclass(frozen=True, slots=True)
class _Entity:
    """What is sent for one resource: its metadata and how to read its bytes.

    `size` None means unknown: no Content-Length and no ranges. `inline` holds
    in-memory content; `local_path` is set only when the server advertises
    `http.response.pathsend` and the store has the blob on a local disk.
    """

    size: int | None
    validators: Validators
    content_type: str
    open_body: BodyOpener
    inline: bytes | None = None
    local_path: Path | None = None


@dataclass(slots=True)
class _Request:
    """One request in flight, and whether its response has started."""

    scope: Scope
    receive: Receive
    send: Send
    head: bool
    headers: dict[str, str] = field(default_factory=dict)
    started: bool = False

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})


class FilesRoute:
    """ASGI handler of `/files/<project>/<filename>` over a repository chain."""

    def __init__(self, chain: Repository, redirect: Presigner | None = None) -> None:
        """`redirect`, if given, may send downloads of stored files elsewhere."""
        self._chain = chain
        self._redirect = redirect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; domain errors become their status (routes/errors.py).

        An error after the response started (an upstream failing mid-stream)
        is re-raised so the server aborts the connection: a client must see a
        short body rather than a complete-looking wrong one.
        """
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
            body = b"Method not allowed: /files/ serves GET and HEAD only.\n"
            await send_response(send, 405, headers, body)
            return
        request = _Request(scope, receive, send, head=method == "HEAD")
        request.headers = _conditional_headers(scope)
        try:
            await self._serve(request)
        except PackyardError as error:
            if request.started:
                raise
            if isinstance(error, FileDenied):
                scope[REFUSED] = error
            elif isinstance(error, UpstreamError) and SERVED in scope:
                scope[UPSTREAM_FAILED] = error
            status, headers, body = error_parts(error)
            await send_response(send, status, headers, body, head=request.head)

    async def _serve(self, request: _Request) -> None:
        project, filename = parse_file_path(request.scope)
        ctx = request_context(request.scope)
        resource = await self._chain.get_file(project, filename, ctx)
        request.scope[SERVED] = (project, resource, ctx)
        validators = Validators.of(resource.sha256, resource.modified)
        if await _answered_by_preconditions(request, validators):
            return
        if isinstance(resource, StoredFile) and self._redirect is not None:
            location = await self._redirect(resource)
            if location is not None:
                await _send_redirect(request, location)
                return
        if not isinstance(resource, RemoteFile):
            await _send_entity(request, _local_entity(resource, validators, request.scope))
        elif resource.size is None:
            await _serve_unsized_remote(request, resource, validators)
        else:
            opener = partial(_remote_body, resource, size=resource.size)
            await _send_entity(
                request, _Entity(resource.size, validators, resource.content_type, opener)
            )


async def _send_redirect(request: _Request, location: str) -> None:
    # Not cacheable: the presigned URL expires, the file behind it does not.
    headers = [(b"location", location.encode()), (b"cache-control", b"private, no-store")]
    await send_response(request.send, 302, headers, b"", head=request.head)


def _local_entity(
    resource: InlineFile | StoredFile, validators: Validators, scope: Scope
) -> _Entity:
    """The entity of a file in memory or in our blob storage."""
    if isinstance(resource, InlineFile):
        content = resource.content
        opener = partial(_inline_body, content)
        return _Entity(len(content), validators, resource.content_type, opener, inline=content)
    return _Entity(
        resource.size,
        validators,
        resource.content_type,
        partial(_stored_body, resource),
        local_path=_pathsend_path(resource, scope),
    )


async def _serve_unsized_remote(
    request: _Request, resource: RemoteFile, validators: Validators
) -> None:
    """Serve an upstream file whose size the index did not give.

    The upstream response is opened first, for the size it announces, which
    Content-Length and range resolution need. A full GET streams that very
    response; a range opens a second one for just those bytes. If the size is
    still unknown, the whole file is streamed without Content-Length and with
    `Accept-Ranges: none` (RFC 9110 §14.3), ranges ignored (§14.2).
    """
    async with resource.opener.open(resource.url, None) as probe:
        try:
            opener = partial(_probe_or_range, resource, probe)
            entity = _Entity(probe.size, validators, resource.content_type, opener)
            await _send_entity(request, entity)
        finally:
            await _close(probe.chunks)


def _probe_or_range(
    resource: RemoteFile, probe: RemoteBody, byte_range: ByteRange | None
) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
    if byte_range is None:
        return nullcontext(probe.chunks)
    return _remote_body(resource, byte_range, size=probe.size)


async def _send_entity(request: _Request, entity: _Entity) -> None:
    """Send the 200 or 206 response: headers, then (for GET) the bytes.

    Raises:
        RangeNotSatisfiable: the Range lies outside the file (416).
        PackyardError: opening or first reading the bytes failed (before any header).
    """
    byte_range = None
    if not request.head and entity.size is not None:
        # RFC 9110 §14.2: GET is the only method with range handling, so HEAD
        # ignores Range and describes the whole file.
        byte_range = requested_range(request.headers, entity.validators, entity.size)
    status = 200 if byte_range is None else 206
    headers = _entity_headers(entity, byte_range)
    if request.head:
        await request.start(status, headers)
        await request.send({"type": "http.response.body", "body": b""})
    elif entity.inline is not None:
        await request.start(status, headers)
        body = entity.inline if byte_range is None else _slice(entity.inline, byte_range)
        await request.send({"type": "http.response.body", "body": body})
    elif byte_range is None and entity.local_path is not None:
        await request.start(status, headers)
        await request.send({"type": PATHSEND, "path": str(entity.local_path)})
    else:
        await _stream_entity(request, entity, status, headers, byte_range)


async def _stream_entity(
    request: _Request, entity: _Entity, status: int, headers: Headers, byte_range: ByteRange | None
) -> None:
    """Open the bytes, read the first chunk, then start the response and stream.

    Reading one chunk before the status line lets a failing store or upstream
    still be answered with its own status instead of a broken 200.
    """
    async with entity.open_body(byte_range) as chunks:
        first = await anext(chunks, None)
        await request.start(status, headers)
        await _stream_body(request, first, chunks)


async def _stream_body(
    request: _Request, first: bytes | None, chunks: AsyncIterator[bytes]
) -> None:
    """Send `first`, then the rest of `chunks`, then the end of the body.

    Stops quietly when the client goes away. Servers of ASGI spec 2.3 (uvicorn
    0.54 among them) then drop sent data silently and report the disconnect
    only through `receive`, so a watcher task cancels the copy; servers of
    spec 2.4 raise OSError from `send`. The caller's context managers then
    close the store or upstream response, outside the cancelled scope.
    """
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, request.receive, group.cancel_scope)
        try:
            await _copy_body(request.send, first, chunks)
        except Exception as error:  # re-raised below, not wrapped in an ExceptionGroup
            failure = error
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _copy_body(send: Send, first: bytes | None, chunks: AsyncIterator[bytes]) -> None:
    try:
        if first is not None:
            await _send_chunk(send, first)
            async for chunk in chunks:
                if chunk:
                    await _send_chunk(send, chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except _ClientGone:
        return


class _ClientGone(Exception):
    """`send` failed because the client disconnected (ASGI spec 2.4)."""


async def _send_chunk(send: Send, chunk: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except OSError as error:
        raise _ClientGone from error


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _answered_by_preconditions(request: _Request, validators: Validators) -> bool:
    """Send 304 or 412 if a precondition decides the response (RFC 9110 §13.2.2)."""
    status = precondition_status(request.headers, validators)
    if status is None:
        return False
    if status == 412:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
        body = b"Precondition failed: this file does not match If-Match/If-Unmodified-Since.\n"
        await send_response(request.send, 412, headers, body, head=request.head)
        return True
    # §15.4.5: a 304 carries the cache headers a 200 would, and no Content-Length
    # unless it equals the 200's (§8.6): so none at all.
    await request.start(304, [(b"cache-control", CACHE_CONTROL), *_validator_headers(validators)])
    await request.send({"type": "http.response.body", "body": b""})
    return True


def _entity_headers(entity: _Entity, byte_range: ByteRange | None) -> Headers:
    """The headers of a 200/206, the same for GET and HEAD. Never Content-Encoding."""
    headers: Headers = [
        (b"content-type", entity.content_type.encode("latin-1")),
        (b"cache-control", CACHE_CONTROL),
        # Files share an origin with the web UI: never sniff them into HTML.
        (b"x-content-type-options", b"nosniff"),
        *_validator_headers(entity.validators),
    ]
    if entity.size is None:
        headers.append((b"accept-ranges", b"none"))
    elif byte_range is None:
        headers += [(b"accept-ranges", b"bytes"), (b"content-length", b"%d" % entity.size)]
    else:
        content_range = f"bytes {byte_range.start}-{byte_range.end}/{entity.size}"
        headers += [
            (b"accept-ranges", b"bytes"),
            (b"content-length", b"%d" % byte_range.length),
            (b"content-range", content_range.encode("ascii")),
        ]
    return headers


def _validator_headers(validators: Validators) -> Headers:
    headers: Headers = []
    if validators.etag is not None:
        headers.append((b"etag", validators.etag.encode("latin-1")))
    if validators.last_modified is not None:
        headers.append((b"last-modified", format_http_date(validators.last_modified).encode()))
    return headers


def _conditional_headers(scope: Scope) -> dict[str, str]:
    """The request's Range and conditional headers, repeats joined (RFC 9110 §5.3)."""
    found: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1")
        if name in _CONDITIONAL:
            text = value.decode("latin-1")
            found[name] = f"{found[name]}, {text}" if name in found else text
    return found


def request_context(scope: Scope) -> RequestContext:
    client = scope.get("client")
    agent = request_header(scope, b"user-agent")
    return RequestContext(
        identity=scope.get(IDENTITY),
        client=client[0] if client else None,
        user_agent=agent.decode("latin-1") if agent is not None else None,
    )


def _pathsend_path(resource: StoredFile, scope: Scope) -> Path | None:
    """The blob's local path, if both the store and the server allow pathsend.

    uvicorn 0.54 does not advertise `http.response.pathsend` (granian and
    hypercorn do); there the bytes are streamed from `store.read`.
    """
    if PATHSEND not in (scope.get("extensions") or {}):
        return None
    local_path: Callable[[str], Path | None] | None = getattr(resource.store, "local_path", None)
    return local_path(resource.key) if local_path is not None else None


def _slice(content: bytes, byte_range: ByteRange) -> bytes:
    return content[byte_range.start : byte_range.end + 1]


@asynccontextmanager
async def _inline_body(
    content: bytes, byte_range: ByteRange | None
) -> AsyncIterator[AsyncIterator[bytes]]:
    yield _once(content if byte_range is None else _slice(content, byte_range))


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


@asynccontextmanager
async def _stored_body(
    resource: StoredFile, byte_range: ByteRange | None
) -> AsyncIterator[AsyncIterator[bytes]]:
    chunks = _missing_is_an_error(resource, resource.store.read(resource.key, byte_range))
    try:
        yield chunks
    finally:
        await _close(chunks)


async def _missing_is_an_error(
    resource: StoredFile, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """`chunks`, with a missing blob raised as `BlobMissing` (a 503 that names the
    store) rather than a bare FileNotFoundError (a 500)."""
    try:
        async for chunk in chunks:
            yield chunk
    except FileNotFoundError:
        store = str(getattr(resource.store, "name", "") or "of this server")
        raise BlobMissing(store, resource.filename) from None
    finally:
        await _close(chunks)


@asynccontextmanager
async def _remote_body(
    resource: RemoteFile, byte_range: ByteRange | None, *, size: int | None
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The upstream bytes of a range, checking the upstream's size against `size`.

    Raises (on entering):
        UpstreamError: the upstream announces another size than expected (502),
            or failed; UpstreamUnavailable (503); FileNotFound (404).
    """
    async with resource.opener.open(resource.url, byte_range) as body:
        try:
            if size is not None and body.size is not None and body.size != size:
                message = f"{resource.filename} has {body.size} bytes, the index said {size}."
                raise UpstreamError(resource.upstream, message)
            yield body.chunks
        finally:
            await _close(body.chunks)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close an async generator left mid-iteration, so its `finally` runs now."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
