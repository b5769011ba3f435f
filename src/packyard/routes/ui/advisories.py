"""`/advisories/{id}`: one known vulnerability (an OSV record) as its own page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates


def advisory_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /advisories/{id}: the record's text (rendered safely), affected and
    fixed versions per project, references, dates; a withdrawn record is
    shown, marked withdrawn. An unknown id is a 404 page."""

    async def advisory(request: Request) -> Response:
        page = await browser.advisory(request.path_params["advisory_id"])
        return templates.render(request, "advisory.html", {"advisory": page})

    return advisory
