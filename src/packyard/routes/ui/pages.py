"""Error pages of the browser: domain errors become a page, never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.errors import NotFound, PackyardError, ProjectNotFound, UpstreamError
from packyard.routes.errors import retry_headers, status_for
from packyard.routes.ui.templating import Templates

Endpoint = Callable[[Request], Awaitable[Response]]
SUGGESTIONS = 5


def with_error_pages(browser: Browser, templates: Templates, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, with every `PackyardError` shown as a page with its status
    (`routes.errors.STATUS_BY_ERROR`): 404 with search suggestions, 502/503
    for a failing upstream, 503 with `Retry-After` for a database that does
    not answer."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except NotFound as exc:
            return await not_found(browser, templates, request, exc)
        except PackyardError as exc:
            status = status_for(exc)
            upstream = isinstance(exc, UpstreamError)
            context = {"status": status, "message": exc.message, "upstream": upstream}
            response = templates.render(request, "error.html", context, status)
            for name, value in retry_headers(exc):
                response.headers[name.decode()] = value.decode()
            return response

    return guarded


async def not_found(
    browser: Browser, templates: Templates, request: Request, error: NotFound | None = None
) -> Response:
    """The 404 page: the message and, for a missing project, similar names."""
    name = error.name if isinstance(error, ProjectNotFound) else ""
    suggestions = await browser.suggest(name, SUGGESTIONS) if name else ()
    context = {
        "message": error.message if error is not None else "This page does not exist.",
        "name": name,
        "suggestions": suggestions,
        "query": name,
    }
    return templates.render(request, "404.html", context, 404)
