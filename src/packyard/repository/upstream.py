"""`UpstreamRepository`: a source that reads a remote PEP 691 / PEP 503 index.

This module is about HTTP: requests with content negotiation, conditional
revalidation (ETag / Last-Modified), a short freshness window, and one request
per project however many callers ask at once. The pages themselves are read by
`upstream_pages`; files are streamed by `upstream_opener`; both share one
`upstream_http.UpstreamClient` (aiohttp).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import anyio
import anyio.to_thread
from typing_extensions import override

from packyard.errors import (
    FileNotFound,
    ProjectNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.flights import Flights
from packyard.model import (
    DistFile,
    ProjectDetail,
    ProjectList,
    RemoteFile,
    RemoteOpener,
    RequestContext,
)
from packyard.repository import upstream_pages as pages
from packyard.repository.base import Repository
from packyard.repository.upstream_http import CLIENT_ERRORS, UpstreamClient, translate_error
from packyard.repository.upstream_opener import UpstreamOpener
from packyard.settings import UpstreamSettings

# PEP 691 §Version + Format Selection: JSON first, HTML as a fallback, with
# `text/html` last (the same preferences as uv, SRA checklist §1.10).
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
MAX_PAGE_BYTES = 256 * 1024 * 1024
# Pages larger than this are parsed in a worker thread, off the event loop.
THREAD_PARSE_BYTES = 256 * 1024
MAX_REMEMBERED_PROJECTS = 10_000

T = TypeVar("T")


def make_upstream_client(settings: UpstreamSettings) -> UpstreamClient:
    """The HTTP client for one upstream (built once, in `compose.py`).

    Its aiohttp session is opened by the first request, in the server's event
    loop. Proxy variables (`HTTPS_PROXY`, `NO_PROXY`) and `SSL_CERT_FILE` are
    honoured: protected networks often reach PyPI only through a proxy.
    """
    return UpstreamClient(settings)


@dataclass(slots=True)
class _Remembered(Generic[T]):
    """A parsed page and what is needed to revalidate it."""

    value: T
    digest: str
    fetched_at: float
    etag: str | None = None
    last_modified: str | None = None


@dataclass(slots=True)
class _Page:
    """A project page with its files indexed by filename, for `get_file`."""

    detail: ProjectDetail
    by_filename: dict[str, DistFile] = field(default_factory=dict)


class UpstreamRepository(Repository):
    """A remote simple index (PyPI or any PEP 503/691 index) as a source.

    Project pages and the project list are remembered per URL (at most
    `max_projects` project pages, least recently used dropped first). Within
    `settings.page_ttl` seconds of a fetch they are served without asking;
    after that they are revalidated with `If-None-Match`/`If-Modified-Since`,
    and an unchanged page comes back as the very same object. A `page_ttl`
    of 0 revalidates on every call: `CacheRepository` keeps the freshness
    window itself and uses this class only to fetch and revalidate.

    The repository owns `client` and closes it in `aclose`.
    """

    def __init__(
        self,
        settings: UpstreamSettings,
        client: UpstreamClient,
        *,
        max_projects: int = MAX_REMEMBERED_PROJECTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.label = settings.label
        self.opener = UpstreamOpener(client, settings.label)
        self._client = client
        self._clock = clock
        self._max_projects = max_projects
        self._pages: OrderedDict[str, _Remembered[_Page]] = OrderedDict()
        self._list: _Remembered[ProjectList] | None = None
        self._flights: Flights[str, object] = Flights()

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        """The upstream's project list, names as the upstream gives them.

        Raises:
            UpstreamError: the root page is missing, refused or unreadable.
            UpstreamUnavailable: the upstream could not be reached.
        """
        if self._list is not None and self._is_fresh(self._list):
            return self._list.value
        return await self._coalesced("", self._refresh_list)

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The upstream's page for `name` (normalised), with `source` = the label.

        Raises:
            ProjectNotFound: the upstream answered 404 or 410.
            UpstreamError: the page was refused, malformed or of API version 2+.
            UpstreamUnavailable: the upstream could not be reached or failed (5xx).
        """
        return (await self._project_page(name)).detail

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> RemoteFile:
        """A file listed on the project page, or its PEP 658 `.metadata` file.

        The `.metadata` pass-through is offered only when the page advertises
        core metadata for the distribution (PEP 658/714).

        Raises:
            ProjectNotFound: the upstream has no such project.
            FileNotFound: the page lists no such file (or no metadata for it).
            UpstreamError, UpstreamUnavailable: as for `get_project`.
        """
        page = await self._project_page(name)
        return remote_file(page.by_filename, name, filename, self.opener, self.label)

    @property
    def client(self) -> UpstreamClient:
        """The HTTP client, for instrumentation (telemetry sets its `observer`)."""
        return self._client

    @override
    async def aclose(self) -> None:
        await self._client.aclose()

    # --- remembering and coalescing -------------------------------------------

    def _is_fresh(self, remembered: _Remembered[T]) -> bool:
        return self._clock() - remembered.fetched_at < self.settings.page_ttl

    async def _project_page(self, name: str) -> _Page:
        remembered = self._pages.get(name)
        if remembered is not None:
            self._pages.move_to_end(name)
            if self._is_fresh(remembered):
                return remembered.value
        return await self._coalesced("/" + name, lambda: self._refresh_project(name))

    async def _coalesced(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """Run `fetch` once for all concurrent callers with the same `key`."""
        return cast(T, await self._flights.run(key, fetch))

    async def _refresh_project(self, name: str) -> _Page:
        old = self._pages.get(name)
        url = self.settings.url + name + "/"
        new = await self._fetch(url, old, lambda r, b: self._parse_page(name, r, b))
        if new is None:
            self._pages.pop(name, None)
            raise ProjectNotFound(name)
        self._pages[name] = new
        self._pages.move_to_end(name)
        while len(self._pages) > self._max_projects:
            self._pages.popitem(last=False)
        return new.value

    async def _refresh_list(self) -> ProjectList:
        new = await self._fetch(self.settings.url, self._list, self._parse_list)
        if new is None:
            self._fail(f"has no project list at {self.settings.url}")
        self._list = new
        return new.value

    # --- HTTP -----------------------------------------------------------------

    async def _fetch(
        self,
        url: str,
        old: _Remembered[T] | None,
        parse: Callable[[aiohttp.ClientResponse, bytes], T],
    ) -> _Remembered[T] | None:
        """GET a page, revalidating `old`; None when the upstream says 404 or 410.

        Returns `old` itself (refreshed) on 304, or when the body is unchanged.

        Raises:
            UpstreamError, UpstreamUnavailable: see `_check_status`.
        """
        headers = {"Accept": ACCEPT}
        if old is not None and old.etag:
            headers["If-None-Match"] = old.etag
        if old is not None and old.last_modified:
            headers["If-Modified-Since"] = old.last_modified
        response, body = await self._get(url, headers)
        if response.status in (404, 410):
            return None
        if response.status == 304 and old is not None:
            return self._revalidated(old, response)
        self._check_status(response)
        digest = hashlib.sha256(body).hexdigest()
        if old is not None and old.digest == digest:
            return self._revalidated(old, response)
        if len(body) > THREAD_PARSE_BYTES:
            value = await anyio.to_thread.run_sync(parse, response, body)
        else:
            value = parse(response, body)
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        return _Remembered(value, digest, self._clock(), etag, modified)

    def _revalidated(self, old: _Remembered[T], response: aiohttp.ClientResponse) -> _Remembered[T]:
        """RFC 9111 §4.3.4: a 304 refreshes the stored validators and freshness."""
        old.fetched_at = self._clock()
        old.etag = response.headers.get("ETag", old.etag)
        old.last_modified = response.headers.get("Last-Modified", old.last_modified)
        return old

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[aiohttp.ClientResponse, bytes]:
        """GET `url` and read at most `MAX_PAGE_BYTES` of its body (of a 200 only).

        The body is decoded (gzip, deflate); redirects are followed, and the
        response's `url` is then the final one.

        Raises:
            UpstreamUnavailable: connection failure or timeout.
            UpstreamError: too many redirects, or a body that is too large.
        """
        try:
            response = await self._client.get(url, headers)
            try:
                if response.status != 200:  # only a 200's body is ever read
                    return response, b""
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_PAGE_BYTES:
                        self._fail(f"sent a page larger than {MAX_PAGE_BYTES} bytes: {url}")
                return response, b"".join(chunks)
            finally:
                response.release()
        except CLIENT_ERRORS as exc:
            raise translate_error(exc, self.label) from exc

    def _check_status(self, response: aiohttp.ClientResponse) -> None:
        """Accept 200 only.

        Raises:
            UpstreamUnavailable: 429 or a 5xx status (worth retrying later).
            UpstreamError: 401/403 (credentials refused) or any other status.
        """
        status = response.status
        if status == 200:
            return
        where = f"(HTTP {status} for {response.url})"
        if status in (401, 403):
            self._fail(f"refused our credentials {where}; check the upstream URL's user/token")
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(self.label, f"is failing or overloaded {where}")
        self._fail(f"answered with an unexpected status {where}")

    def _parse_page(self, name: str, response: aiohttp.ClientResponse, body: bytes) -> _Page:
        kind = self._kind(response)
        page_url = str(response.url)  # the final URL, after redirects (SRA: relative URLs)
        hosts = self._client.hosts  # files elsewhere are dropped (upstream_hosts.py)
        try:
            if kind == "json":
                detail = pages.parse_json_page(body, page_url, name, self.label, hosts)
            else:
                text = _text(response, body)
                detail = pages.parse_html_page(text, page_url, name, self.label, hosts)
        except pages.InvalidPage as exc:
            self._fail(f"sent an unreadable page for {name!r}: {exc}")
        return _Page(detail, {file.filename: file for file in detail.files})

    def _parse_list(self, response: aiohttp.ClientResponse, body: bytes) -> ProjectList:
        try:
            if self._kind(response) == "json":
                return pages.parse_json_list(body, self.label)
            return pages.parse_html_list(_text(response, body), self.label)
        except pages.InvalidPage as exc:
            self._fail(f"sent an unreadable project list: {exc}")

    def _kind(self, response: aiohttp.ClientResponse) -> str:
        """PEP 691 §Content-Types: v1+json, v1+html or its alias text/html.

        Raises:
            UpstreamError: any other (or no) Content-Type.
        """
        content_type = response.headers.get("Content-Type", "")
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type != JSON_TYPE and media_type not in HTML_TYPES:
            self._fail(f"sent {content_type or 'no Content-Type'!r}, not a simple API page")
        return "json" if media_type == JSON_TYPE else "html"

    def _fail(self, message: str) -> NoReturn:
        raise UpstreamError(self.label, message)


def remote_file(
    dists: Mapping[str, DistFile], name: str, filename: str, opener: RemoteOpener, label: str
) -> RemoteFile:
    """The upstream file `filename` of a page whose files are `dists` (by filename).

    `<dist>.metadata` is offered only when the page advertises core metadata
    for that distribution (PEP 658/714). Shared with `CacheRepository`, which
    keeps the pages itself.

    Raises:
        FileNotFound: the page lists no such file (or no metadata for it).
    """
    dist = dists.get(filename)
    if dist is not None:
        return RemoteFile(
            filename=filename,
            url=dist.url,
            opener=opener,
            upstream=label,
            sha256=dist.sha256,
            size=dist.size,
            modified=dist.upload_time,
        )
    dist = dists.get(filename.removesuffix(".metadata"))
    if filename.endswith(".metadata") and dist is not None and dist.core_metadata:
        # PEP 658: the metadata file is at the distribution's URL + ".metadata".
        url = urlsplit(dist.url)
        metadata_url = urlunsplit(url._replace(path=url.path + ".metadata"))
        hashes = dist.core_metadata if not isinstance(dist.core_metadata, bool) else {}
        return RemoteFile(filename, metadata_url, opener, label, hashes.get("sha256"))
    raise FileNotFound(name, filename)


def _text(response: aiohttp.ClientResponse, body: bytes) -> str:
    """Decode an HTML page with its declared charset, UTF-8 otherwise."""
    try:
        return body.decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")
