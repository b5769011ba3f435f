"""Cross-site requests to the upload service and the admin API are refused.

A browser attaches credentials it holds for this site to requests that pages
of OTHER sites make: the session cookie (where `SameSite` lets it through)
and Basic credentials it cached after a 401 challenge, which it sends to this
origin whatever page asked. A page elsewhere could then upload, yank or make
tokens in the name of whoever visits it. The clients these paths are for
(twine, uv, pdm, poetry, hatch, curl, scripts) are not browsers and send no
`Origin`, no `Referer` and no `Sec-Fetch-Site`, so they are not affected.

A request to `/legacy/…` or `/api/…` is refused (403, saying why) when:

- its `Origin` names another site, or is `null` (a sandboxed frame, or a
  redirect across sites): browsers send `Origin` with every cross-origin
  request and every POST (Fetch §3.1, "Origin header");
- it has no `Origin` and is not GET/HEAD, and `Sec-Fetch-Site` says
  `cross-site` or `same-site` (Fetch Metadata), or its `Referer` names another
  site.

GET and HEAD without `Origin` pass: a browser does not let another site's
page read their answers, and a link from the intranet wiki to `/api/v1/docs`
should open (docs/decisions.md).

"This site" is the request's own `Host` (which the browser sets from the URL
it opened, so a page elsewhere cannot choose it) or the configured
`public_url`. As in the admin pages' CSRF check (`ui/admin/csrf.py`), the
scheme is not compared: behind a proxy that ends TLS the scheme seen here
is not the browser's.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import PermissionDenied
from packyard.publish.multipart import discard_body
from packyard.routes.asgi import request_header, send_response
from packyard.routes.errors import error_parts
from packyard.routes.simple import local_path

PROTECTED_PREFIXES: Final = ("/legacy", "/api/")
SAFE_METHODS: Final = ("GET", "HEAD", "OPTIONS")
_FOREIGN_FETCH_SITES: Final = (b"cross-site", b"same-site")


def foreign_source(scope: Scope, public_netloc: str | None = None) -> str | None:
    """What shows that a browser sent this request from another site's page
    (the header and its value), or None when nothing does."""
    own = {netloc for netloc in (_host(scope), public_netloc) if netloc}
    origin = request_header(scope, b"origin")
    if origin is not None:
        value = origin.decode("latin-1").strip()
        if value == "null" or _netloc(value) not in own:
            return f"Origin: {value}"
        return None
    if scope["method"] in SAFE_METHODS:
        return None
    fetch_site = request_header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() in _FOREIGN_FETCH_SITES:
        return f"Sec-Fetch-Site: {fetch_site.decode('latin-1')}"
    referer = request_header(scope, b"referer")
    if referer is not None:
        value = referer.decode("latin-1").strip()
        if _netloc(value) not in own:
            return f"Referer: {value}"
    return None


class CrossSiteGuard:
    """Refuses cross-site requests to `/legacy/` and `/api/` (see the module doc)."""

    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self._app = app
        self._public_netloc = _netloc(public_url) if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and local_path(scope).startswith(PROTECTED_PREFIXES):
            source = foreign_source(scope, self._public_netloc)
            if source is not None:
                await discard_body(receive)
                await _refuse(scope, send, source)
                return
        await self._app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, source: str) -> None:
    """403 with the reason: `{"detail": …}` for the API (as its other errors), else
    plain text with the message first (as the upload service's errors)."""
    error = PermissionDenied(
        f"Cross-site request refused ({source}): uploads and API calls are accepted "
        "from this site's own pages and from clients that are not browsers (twine, uv, "
        "curl), never from another site's page."
    )
    status, headers, body = error_parts(error)
    if local_path(scope).startswith("/api/"):
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        body = json.dumps({"detail": error.message}).encode()
    await send_response(send, status, headers, body, head=scope["method"] == "HEAD")


def _host(scope: Scope) -> str | None:
    host = request_header(scope, b"host")
    return host.decode("latin-1").strip().lower() if host is not None else None


def _netloc(url: str) -> str:
    """The host[:port] of `url`, lower case ("" for anything that is not http(s))."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.netloc.lower() if parts.scheme in ("http", "https") else ""
