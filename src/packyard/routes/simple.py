"""The simple API (PEP 503/691) as a raw ASGI handler: `/simple/` and `/simple/<project>/`.

A warm page costs little more than writing prepared bytes: the handler
keeps, per (page, media type), the last object the chain returned with its
rendered body and headers, and renders again only when the chain returns a
different object (the chain returns the very same object while nothing
changed, `Repository.get_project`).

URL rules (SRA, STANDARDS §1.1-1.4): `/simple` and `/simple/<name>` redirect
(301) to the slashed URL, and a name that is not normalised redirects (301)
to its normalised form; the query string (`?format=`) is kept. Locations are
absolute paths below the mount point (`root_path`), as Warehouse sends them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from packyard.dists.filenames import MAX_NAME_LENGTH, TOO_LONG_NAME
from packyard.errors import InvalidName, NotFound, PackyardError
from packyard.model import RequestContext
from packyard.repository.base import Repository
from packyard.routes.asgi import Headers, request_header, send_response
from packyard.routes.errors import error_parts
from packyard.routes.negotiation import MediaType, negotiate
from packyard.routes.read_auth import IDENTITY
from packyard.serialize import html, json

# Name normalization spec: valid names, and the normal form.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")

_ROOT = "/"  # The cache key of the project list: never a project name.
# Remembered valid names: the memo starts afresh past this many bytes of names
# (a name is at most MAX_NAME_LENGTH characters, so it holds thousands of them).
_MAX_MEMO_BYTES = 4 * 1024 * 1024
_VARY = (b"vary", b"Accept")
_ALLOW = [
    (b"allow", b"GET, HEAD"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),
]

SITE_ROOT = "packyard.site_root"
"""Scope key: the application's `root_path`, kept by a route that extends it (snapshots)."""
_HOST = re.compile(rb"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")

DEFAULT_CACHE_CONTROL = b"public, max-age=60"
"""Short: in-house pages change on upload and yank; revalidation is a cheap 304."""


def local_path(scope: Scope) -> str:
    """The request path below the application's mount point (`root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def request_site(scope: Scope) -> str | None:
    """This site's absolute URL as the request reached it (ending in `/`): its
    scheme, its `Host` if well-formed (else the server's address), and the
    application's root (`SITE_ROOT` when a route moved `root_path`)."""
    host = request_header(scope, b"host")
    if host is None or not _HOST.fullmatch(host):
        server = scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}".encode()
    root = scope.get(SITE_ROOT, scope.get("root_path", ""))
    return f"{scope.get('scheme', 'http')}://{host.decode('ascii')}{root}/"


def normalize(name: str) -> str:
    """`packaging.utils.canonicalize_name`, without its validation overhead."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered page: the object it came from, its bytes and response headers."""

    source: object
    body: bytes
    etag: bytes
    headers: Headers
    not_modified_headers: Headers


class PageCache:
    """The last rendered page per (key, media type), reused while the source `is` the same.

    Bounded: past `max_entries`, the least recently rendered entry goes first.
    """

    def __init__(self, cache_control: bytes, max_entries: int = 4096) -> None:
        self._cache_control = cache_control
        self._max_entries = max_entries
        self._pages: dict[tuple[str, MediaType], Page] = {}

    def get(
        self, key: str, media_type: MediaType, source: object, render: Callable[[], bytes]
    ) -> Page:
        """The page of `source`, rendered by `render()` unless it is cached for `source`."""
        slot = (key, media_type)
        page = self._pages.get(slot)
        if page is not None and page.source is source:
            return page
        page = self._build(source, render(), media_type)
        self._pages.pop(slot, None)
        if len(self._pages) >= self._max_entries:
            del self._pages[next(iter(self._pages))]
        self._pages[slot] = page
        return page

    def _build(self, source: object, body: bytes, media_type: MediaType) -> Page:
        # A strong ETag of this representation: text/html and v1+html share the
        # bytes but not the Content-Type, so the type goes into the digest too.
        digest = hashlib.sha256(media_type.content_type + b"\n" + body).hexdigest()[:32]
        etag = f'"{digest}"'.encode()
        common = [(b"etag", etag), _VARY, (b"cache-control", self._cache_control)]
        # Complete, Content-Length included: a warm page is sent without building anything.
        headers = [
            (b"content-type", media_type.content_type),
            *common,
            (b"content-length", str(len(body)).encode()),
        ]
        return Page(source, body, etag, headers, common)


class SimpleRoute:
    """ASGI handler of every path under `/simple` (GET and HEAD; 405 otherwise)."""

    def __init__(
        self,
        chain: Repository,
        *,
        cache_control: bytes = DEFAULT_CACHE_CONTROL,
        max_pages: int = 4096,
        site_url: str | None = None,
    ) -> None:
        """`site_url`: `Settings.public_url`, which absolute URLs in pages (PEP 740
        provenance) start with; None: the URL each request was made to."""
        self._chain = chain
        self._site_url = site_url.rstrip("/") + "/" if site_url else None
        self._pages = PageCache(cache_control, max_pages)
        # Requested name -> its normal form, for names already found valid.
        self._normalized: dict[str, str] = {}
        self._memo_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        if not head and scope["method"] != "GET":
            await send_response(send, 405, _ALLOW, b"Method not allowed: use GET.\n")
            return
        rest = local_path(scope)[len("/simple") :]
        query: bytes = scope.get("query_string", b"")
        try:
            if rest == "/":
                await self._project_list(scope, send, head)
            elif rest == "":
                await _redirect(scope, send, "/simple/", query, head)
            else:
                await self._project_page(scope, send, rest[1:], query, head)
        except PackyardError as error:
            status, headers, body = error_parts(error)
            await send_response(send, status, headers, body, head=head)

    async def _project_page(
        self, scope: Scope, send: Send, rest: str, query: bytes, head: bool
    ) -> None:
        name, slash, tail = rest.partition("/")
        if tail:
            raise NotFound(f"No page at {scope['path']!r}: project pages are /simple/<name>/.")
        normalized = self._normalized.get(name)
        if normalized is None:
            normalized = self._check_name(name)
        if not slash or normalized != name:
            # SRA: MAY redirect unnormalised names; HTML URLs SHOULD end in `/`.
            await _redirect(scope, send, f"/simple/{normalized}/", query, head)
            return
        accept, if_none_match, ctx = _request_headers(scope)
        media_type = negotiate(accept, query)
        detail = await self._chain.get_project(normalized, ctx)
        render = json.render_project_detail if media_type.is_json else html.render_project_detail
        site = self._site_url or request_site(scope)
        # Without a public_url, a page's provenance URLs are the request's host's.
        key = normalized if self._site_url else f"{site} {normalized}"
        page = self._pages.get(key, media_type, detail, lambda: render(detail, site))
        await _send_page(send, page, if_none_match, head)

    def _check_name(self, name: str) -> str:
        """The normal form of a valid `name`, remembered (bounded in bytes) for the next request.

        Raises:
            NotFound: the name is longer than MAX_NAME_LENGTH (no project has it).
            InvalidName: the name is not valid under the name-normalization spec.
        """
        if len(name) > MAX_NAME_LENGTH:
            raise NotFound(TOO_LONG_NAME)
        if not _VALID_NAME.match(name):
            raise InvalidName(name)
        normalized = normalize(name)
        size = 2 * len(name)  # the key and its normal form: ASCII, one byte a character
        if self._memo_bytes + size > _MAX_MEMO_BYTES:
            self._normalized.clear()
            self._memo_bytes = 0
        self._normalized[name] = normalized
        self._memo_bytes += size
        return normalized

    async def _project_list(self, scope: Scope, send: Send, head: bool) -> None:
        accept, if_none_match, ctx = _request_headers(scope)
        media_type = negotiate(accept, scope.get("query_string", b""))
        projects = await self._chain.list_projects(ctx)
        render = json.render_project_list if media_type.is_json else html.render_project_list
        page = self._pages.get(_ROOT, media_type, projects, lambda: render(projects))
        await _send_page(send, page, if_none_match, head)


def _request_headers(scope: Scope) -> tuple[bytes | None, bytes | None, RequestContext]:
    """Accept, If-None-Match and the request context, in one pass over the headers."""
    accept = if_none_match = user_agent = None
    for key, value in scope["headers"]:
        if key == b"accept":
            # Repeated fields are one comma-separated list (RFC 9110 §5.3).
            accept = value if accept is None else accept + b"," + value
        elif key == b"if-none-match":
            if_none_match = value
        elif key == b"user-agent":
            user_agent = value.decode("latin-1")
    client = scope.get("client")
    ctx = RequestContext(
        identity=scope.get(IDENTITY),
        client=client[0] if client else None,
        user_agent=user_agent,
    )
    return accept, if_none_match, ctx


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 §13.1.2: `*`, or any listed tag equal under weak comparison."""
    value = if_none_match.strip()
    if value == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in value.split(b","))


async def _send_page(send: Send, page: Page, if_none_match: bytes | None, head: bool) -> None:
    if if_none_match is not None and etag_matches(if_none_match, page.etag):
        # 304 carries the validators and caching headers of the 200, no body.
        headers = page.not_modified_headers
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": page.headers})
    await send({"type": "http.response.body", "body": b"" if head else page.body})


async def _redirect(scope: Scope, send: Send, path: str, query: bytes, head: bool) -> None:
    location = scope.get("root_path", "") + path
    target = location.encode() + (b"?" + query if query else b"")
    headers = [(b"location", target), (b"content-type", b"text/plain; charset=utf-8")]
    await send_response(send, 301, headers, b"Moved to " + target + b"\n", head=head)
