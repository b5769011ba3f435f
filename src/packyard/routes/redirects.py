"""Redirects never send a client to the host its own `Host` header named.

Any client chooses the `Host` header. A redirect built from it (Starlette's
and FastAPI's trailing-slash redirects build absolute URLs from it:
`/admin` -> `http://<Host>/admin/`) sends whoever follows it to that host,
and a shared cache in front may keep such an answer and hand it to everyone
(web cache poisoning). packyard's own redirects are relative already; this
wrapper catches the others, whatever route makes them: an absolute `Location`
on the request's own host becomes the same path on `public_url` when one is
configured, else a relative URL (RFC 9110 §10.2.2 allows them).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.routes.asgi import request_header


class HostSafeRedirects:
    """`app`, with `Location` headers on the request's Host rewritten (module doc)."""

    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self._app = app
        parts = urlsplit(public_url) if public_url else None
        self._origin = f"{parts.scheme}://{parts.netloc}" if parts is not None else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        host = request_header(scope, b"host")
        own = host.decode("latin-1").strip().lower() if host is not None else None

        async def send_safe(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (key, self._rewrite(value, own) if key == b"location" else value)
                    for key, value in message["headers"]
                ]
            await send(message)

        await self._app(scope, receive, send_safe)

    def _rewrite(self, location: bytes, own: str | None) -> bytes:
        """`location` on the public URL (or relative) if it names the request's host."""
        try:
            parts = urlsplit(location.decode("latin-1"))
        except ValueError:
            return location
        if not parts.netloc or (own is not None and parts.netloc.lower() != own):
            return location
        # One leading slash: "//host/…" would be a URL of another host.
        path = "/" + parts.path.lstrip("/")
        path = urlunsplit(("", "", path, parts.query, parts.fragment))
        return (self._origin + path).encode("latin-1")
