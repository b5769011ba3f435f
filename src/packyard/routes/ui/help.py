"""`/help/`: what the messages of uploads and installs refer to, on this server.

The upload API's messages link here (`#file-name-reuse`) rather than to
pypi.org's help: this server's rules are the ones that applied.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates

HELP_PATH = "/help/"


def help_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /help/: one static page, with this index's URL."""

    async def help_page(request: Request) -> Response:
        return templates.render(request, "help.html", {})

    return help_page
