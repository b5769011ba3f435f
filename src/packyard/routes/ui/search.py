"""`/search?q=…&page=…`: search results."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates


def search_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /search: results, each labelled in-house or with its upstream.

    A query that cannot be parsed is answered 400 with the page and the
    message saying what to fix.
    """

    async def search(request: Request) -> Response:
        text = request.query_params.get("q", "")
        try:
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            page = 1
        view = await browser.search(text, page)
        status = 400 if view.error else 200
        return templates.render(request, "search.html", {"search": view, "query": text}, status)

    return search
