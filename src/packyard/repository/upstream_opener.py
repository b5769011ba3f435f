"""`UpstreamOpener`: streams the bytes of upstream files, whole or by byte range.

An upstream may answer a range request with a 206 (trusted only if its
Content-Range covers the range) or with a 200 of the whole file (cut to the
range here). A 404 or 410 becomes `UpstreamFileGone`; the pages that list the
files are read by `upstream.py`. Files are read as sent: no content coding is
undone (aiohttp's `auto_decompress=False`, per request).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

import aiohttp

from packyard.errors import (
    FileNotFound,
    NotFound,
    RangeNotSatisfiable,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.model import ByteRange, RemoteBody
from packyard.repository.upstream_http import CLIENT_ERRORS, UpstreamClient, translate_error

_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)")
# Files are served byte for byte: no content coding (SRA checklist §4).
_WHOLE = {"Accept-Encoding": "identity"}
CHUNK_SIZE = 64 * 1024
"""The most bytes of a file in one chunk (aiohttp would hand over all it has buffered)."""


class UpstreamFileGone(FileNotFound):
    """The upstream answered 404 or 410 for the URL of a file (a 404 at the edge)."""

    def __init__(self, upstream: str, url: str) -> None:
        filename = unquote(urlsplit(url).path.rpartition("/")[2])
        NotFound.__init__(self, f"Upstream {upstream} no longer serves {filename!r} ({url}).")
        self.name, self.filename, self.upstream = "", filename, upstream


class UpstreamOpener:
    """Streams upstream files, with or without a byte range (`model.RemoteOpener`)."""

    def __init__(self, client: UpstreamClient, label: str) -> None:
        self._client = client
        self._label = label

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        """GET `url`, yielding exactly the bytes of `byte_range` (or all of them).

        A 206 is passed through; a 200 to a range request is skipped and cut to
        the range here, and marked `ranged=False` so that a caller can give up
        rather than read the whole file. The response is always closed on exit.

        Raises (on entering):
            FileNotFound: the upstream answered 404 or 410.
            RangeNotSatisfiable: the upstream answered 416.
            UpstreamUnavailable: connection failure, timeout, 429 or 5xx.
            UpstreamError: any other status, or a 206 for another range.
        The chunks raise UpstreamUnavailable if the connection breaks mid-body.
        """
        headers = _WHOLE
        if byte_range is not None:
            headers = {**_WHOLE, "Range": f"bytes={byte_range.start}-{byte_range.end}"}
        try:
            response = await self._client.get(url, headers, decode=False)
        except CLIENT_ERRORS as exc:
            raise translate_error(exc, self._label) from exc
        try:
            yield self._body(response, url, byte_range)
        finally:
            # Back to the pool if the whole body arrived; the connection is closed if not.
            response.release()

    def _body(
        self, response: aiohttp.ClientResponse, url: str, wanted: ByteRange | None
    ) -> RemoteBody:
        status = response.status
        if status == 206 and wanted is not None:
            return self._partial(response, url, wanted)
        if status == 200:
            return self._whole(response, url, wanted)
        if status in (404, 410):
            raise UpstreamFileGone(self._label, url)
        if status == 416:
            match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
            if match:
                raise RangeNotSatisfiable(int(match[1]))
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(self._label, f"is failing (HTTP {status} for {url})")
        raise UpstreamError(self._label, f"answered HTTP {status} for {url}")

    def _whole(
        self, response: aiohttp.ClientResponse, url: str, wanted: ByteRange | None
    ) -> RemoteBody:
        """A 200: the whole file, cut to `wanted` here (`ranged=False` if a range was asked)."""
        size = _int_header(response, "Content-Length")
        if wanted is not None and size is not None and wanted.end >= size:
            raise UpstreamError(self._label, f"has {size} bytes, fewer than asked, at {url}")
        skip, length = (wanted.start, wanted.length) if wanted else (0, None)
        chunks = _sliced(self._raw(response), skip, length, self._label)
        return RemoteBody(size, chunks, ranged=wanted is None)

    def _partial(self, response: aiohttp.ClientResponse, url: str, wanted: ByteRange) -> RemoteBody:
        """RFC 9110 §14.4: trust a 206 only if its Content-Range covers the range."""
        header = response.headers.get("Content-Range", "")
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if match is None or int(match[1]) > wanted.start or int(match[2]) < wanted.end:
            raise UpstreamError(
                self._label, f"answered {header!r} to a request for {wanted} of {url}"
            )
        size = None if match[3] == "*" else int(match[3])
        skip = wanted.start - int(match[1])
        return RemoteBody(size, _sliced(self._raw(response), skip, wanted.length, self._label))

    async def _raw(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The body as sent (`open` asked aiohttp not to undo a content coding).

        In chunks of at most `CHUNK_SIZE`, as they arrive: the files route reads
        one chunk before it answers, so a body that breaks off after its start
        is a broken transfer; one that breaks before (aiohttp then raises at
        once, dropping what it had buffered) is a 503 naming the upstream.
        """
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                yield chunk
        except CLIENT_ERRORS as exc:
            raise translate_error(exc, self._label) from exc


async def _sliced(
    chunks: AsyncIterator[bytes], skip: int, length: int | None, label: str
) -> AsyncIterator[bytes]:
    """Drop the first `skip` bytes, then yield `length` bytes (all if None).

    Raises:
        UpstreamUnavailable: the body ended before `length` bytes.
    """
    async for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        chunk, skip = chunk[skip:], 0
        if length is not None:
            chunk = chunk[:length]
            length -= len(chunk)
        if chunk:
            yield chunk
        if length == 0:
            return
    if length:
        raise UpstreamUnavailable(label, f"ended the response {length} bytes early")


def _int_header(response: aiohttp.ClientResponse, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None
