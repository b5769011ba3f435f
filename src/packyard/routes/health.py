"""`/healthz`: the process is up and serving. It touches no upstream and no database."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from packyard.routes.asgi import send_response

_OK = b'{"status":"ok"}'
_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_ALLOW = [
    (b"allow", b"GET, HEAD"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),
]


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI handler: 200 `{"status":"ok"}` for GET and HEAD, 405 otherwise."""
    method = scope["method"]
    if method in ("GET", "HEAD"):
        await send_response(send, 200, _HEADERS, _OK, head=method == "HEAD")
    else:
        await send_response(send, 405, _ALLOW, b"Method not allowed: use GET.\n")
