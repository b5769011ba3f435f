"""The application factory: one ASGI app in front of the repository chain.

The hot paths of the index (`/simple/…`, `/files/…`), the OSV API (`/osv/…`), `/healthz`
and `/readyz` are raw ASGI handlers, picked by a path-prefix check; everything else (the home
page, uploads, the browser and the admin API) is a Starlette app,
which also runs the lifespan: the chain is closed when the app stops.

Around them, outermost first:

- the read guard, when reading requires credentials (`routes/read_auth.py`):
  around everything, denying by default, so a route added later is covered;
- around the Starlette app only (never the index's hot paths): the refusal of
  cross-site uploads and API calls (`routes/cross_site.py`) and the rewriting
  of redirects built from the `Host` header (`routes/redirects.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.browser.build import standalone_browser
from packyard.browser.service import Browser
from packyard.errors import NotFound
from packyard.repository.base import Repository
from packyard.routes.asgi import send_response
from packyard.routes.cross_site import CrossSiteGuard
from packyard.routes.errors import error_parts
from packyard.routes.health import Readiness, health
from packyard.routes.redirects import HostSafeRedirects
from packyard.routes.simple import SimpleRoute, local_path
from packyard.routes.snapshot import SnapshotRoute
from packyard.routes.ui import ui_routes
from packyard.routes.ui.templating import Templates


def create_app(
    chain: Repository,
    files_app: ASGIApp | None = None,
    browser: Browser | None = None,
    routes: Sequence[BaseRoute] = (),
    *,
    api: ASGIApp | None = None,
    osv: ASGIApp | None = None,
    integrity: ASGIApp | None = None,
    read_guard: Callable[[ASGIApp], ASGIApp] | None = None,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    middleware: Sequence[Middleware] = (),
    readiness: ASGIApp | None = None,
    templates: Templates | None = None,
    public_url: str | None = None,
    background: Sequence[Callable[[], AbstractAsyncContextManager[None]]] = (),
) -> ASGIApp:
    """The packyard ASGI application.

    Args:
        chain: the built repository chain (`compose.py`); closed on shutdown.
        files_app: the ASGI handler of `/files/<project>/<filename>`, which
            receives the full path; None answers 404 there.
        browser: the browser service (`browser/build.py`) behind `/`, `/search`
            and `/project/…`; None builds one over `chain` alone.
        routes: more Starlette routes, matched before the browser's (the upload
            service's `/legacy/`, `routes/upload.py`).
        api: the admin API (`routes/api`), mounted at `/api/v1`.
        osv: the OSV API's handler (`routes/osv.py`), given every path under
            `/osv/`; None leaves them to the Starlette app (404).
        integrity: the PEP 740 provenance handler (`routes/integrity.py`), given
            every path under `/integrity/`; None leaves them to the Starlette app.
        read_guard: wraps the whole application, e.g. to require credentials
            for everything but a few public paths (`routes/read_auth.py`).
        on_shutdown: closed after the chain when the app stops (shared clients).
        middleware: Starlette middleware around the browser, upload and API routes
            (the admin pages' `ViewerMiddleware`); never on the read hot paths.
        readiness: the handler of `/readyz` (`routes.health.Readiness`); None
            answers ready.
        templates: the web pages' templates (`routes.ui.templating`, with the
            site's `public_url` and image hosts); None: the defaults.
        public_url: `Settings.public_url`: this site as its users reach it.
        background: work that runs while the app serves (the advisories'
            scheduled refresh), each entered when the app starts and exited,
            before anything is closed, when it stops.
    """
    files = files_app or _no_files
    guard = read_guard or _unguarded
    mounts = [Mount("/api/v1", app=api)] if api is not None else []
    pages = ui_routes(browser or standalone_browser(chain), templates)
    other = Starlette(
        routes=[*routes, *mounts, *pages],
        lifespan=_closing(chain, on_shutdown, background),
        middleware=list(middleware),
    )
    return guard(
        _Dispatcher(
            simple=SimpleRoute(chain, site_url=public_url),
            files=files,
            snapshot=SnapshotRoute(chain, files, site_url=public_url),
            readiness=readiness or Readiness({}),
            osv=osv,
            integrity=integrity,
            other=CrossSiteGuard(HostSafeRedirects(other, public_url), public_url),
        )
    )


def _unguarded(app: ASGIApp) -> ASGIApp:
    return app


class _Dispatcher:
    """Routes by path prefix; lifespan and anything unknown go to the Starlette app."""

    def __init__(
        self,
        simple: ASGIApp,
        files: ASGIApp,
        snapshot: ASGIApp,
        readiness: ASGIApp,
        other: ASGIApp,
        osv: ASGIApp | None = None,
        integrity: ASGIApp | None = None,
    ) -> None:
        self._simple = simple
        self._integrity = integrity
        self._files = files
        self._snapshot = snapshot
        self._readiness = readiness
        self._other = other
        self._osv = osv

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = local_path(scope)
            if path == "/simple" or path.startswith("/simple/"):
                return await self._simple(scope, receive, send)
            if path.startswith("/files/"):
                return await self._files(scope, receive, send)
            if path.startswith("/snapshot/"):
                return await self._snapshot(scope, receive, send)
            if path == "/healthz":
                return await health(scope, receive, send)
            if path == "/readyz":
                return await self._readiness(scope, receive, send)
            if self._osv is not None and path.startswith("/osv/"):
                return await self._osv(scope, receive, send)
            if self._integrity is not None and path.startswith("/integrity/"):
                return await self._integrity(scope, receive, send)
        return await self._other(scope, receive, send)


def _closing(
    chain: Repository,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    background: Sequence[Callable[[], AbstractAsyncContextManager[None]]] = (),
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that runs `background` while the app serves, then
    closes the chain's clients, then `on_shutdown`'s, when the app stops."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with AsyncExitStack() as running:
                for work in background:
                    await running.enter_async_context(work())
                yield
        finally:
            try:
                await chain.aclose()
            finally:
                for close in on_shutdown:
                    await close()

    return lifespan


async def _no_files(scope: Scope, receive: Receive, send: Send) -> None:
    status, headers, body = error_parts(NotFound("No file store is configured."))
    await send_response(send, status, headers, body, head=scope["method"] == "HEAD")
