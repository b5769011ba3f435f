"""`/`: the home page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates


def home_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /: a search box, project counts and recent in-house releases."""

    async def home(request: Request) -> Response:
        view = await browser.home()
        return templates.render(request, "home.html", {"home": view})

    return home
