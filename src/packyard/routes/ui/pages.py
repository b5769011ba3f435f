"""Error pages of the browser: domain errors become a page, never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.errors import NotFound, PackyardError, ProjectNotFound
from packyard.routes.errors import status_for
from packyard.routes.ui.templating import Templates

Endpoint = Callable[[Request], Awaitable[Response]]
SUGGESTIONS = 5


def with_error_pages(browser: Browser, templates: Templates, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, with every `PackyardError` shown as a page with its status
    (`routes.errors.STATUS_BY_ERROR`): 404 with search suggestions, 502/503
    for a failing upstream."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except NotFound as exc:
            return await not_found(browser, templates, request, exc)
        except PackyardError as exc:
            context = {"status": status_for(exc), "message": exc.message}
            return templates.render(request, "error.html", context, status_for(exc))

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
