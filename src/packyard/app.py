"""The application factory: one ASGI app in front of the repository chain.

The hot paths of the index (`/simple/…`, `/files/…`) and `/healthz` are raw
ASGI handlers, picked by a path-prefix check; everything else (the home
page now; uploads, the browser and the admin API later) is a Starlette app,
which also runs the lifespan: the chain is closed when the app stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import NotFound
from packyard.repository.base import Repository
from packyard.routes.asgi import send_response
from packyard.routes.errors import error_parts
from packyard.routes.health import health
from packyard.routes.simple import SimpleRoute, local_path

_HOME = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>packyard</title></head>
<body>
<h1>packyard</h1>
<p>A private Python package index. Point your installer at
<a href="simple/">the simple index</a>, for example
<code>pip install --index-url &lt;this server&gt;/simple/ &lt;package&gt;</code>.</p>
</body>
</html>
"""


def create_app(chain: Repository, files_app: ASGIApp | None = None) -> ASGIApp:
    """The packyard ASGI application.

    Args:
        chain: the built repository chain (`compose.py`); closed on shutdown.
        files_app: the ASGI handler of `/files/<project>/<filename>`, which
            receives the full path; None answers 404 there.
    """
    return _Dispatcher(
        simple=SimpleRoute(chain),
        files=files_app or _no_files,
        other=Starlette(routes=[Route("/", _home)], lifespan=_closing(chain)),
    )


class _Dispatcher:
    """Routes by path prefix; lifespan and anything unknown go to the Starlette app."""

    def __init__(self, simple: ASGIApp, files: ASGIApp, other: ASGIApp) -> None:
        self._simple = simple
        self._files = files
        self._other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = local_path(scope)
            if path == "/simple" or path.startswith("/simple/"):
                return await self._simple(scope, receive, send)
            if path.startswith("/files/"):
                return await self._files(scope, receive, send)
            if path == "/healthz":
                return await health(scope, receive, send)
        return await self._other(scope, receive, send)


def _closing(chain: Repository) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that closes the chain's clients when the app stops."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await chain.aclose()

    return lifespan


async def _home(request: Request) -> HTMLResponse:
    return HTMLResponse(_HOME)


async def _no_files(scope: Scope, receive: Receive, send: Send) -> None:
    status, headers, body = error_parts(NotFound("No file store is configured."))
    await send_response(send, status, headers, body, head=scope["method"] == "HEAD")
