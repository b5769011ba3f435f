"""The browser service's HTTP edge: PyPI-like pages rendered on the server.

Every page works without JavaScript; `static/app.js` only loads the
metadata part of a public project's page in place and adds copy buttons.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute, Route

from packyard.browser.service import Browser
from packyard.routes.ui.advisories import advisory_endpoint
from packyard.routes.ui.assets import StaticAssets
from packyard.routes.ui.help import HELP_PATH, help_endpoint
from packyard.routes.ui.home import home_endpoint
from packyard.routes.ui.pages import Endpoint, with_error_pages
from packyard.routes.ui.project import details_endpoint, project_endpoint
from packyard.routes.ui.search import search_endpoint
from packyard.routes.ui.templating import Templates


def ui_routes(browser: Browser, templates: Templates | None = None) -> list[BaseRoute]:
    """The browser's routes: `/`, `/search`, `/project/…`, `/advisories/…` and `/static/…`;
    `templates` None: the defaults (no `public_url`, no image hosts)."""
    templates = templates or Templates(StaticAssets())
    assets = templates.assets

    def page(path: str, factory: Callable[[Browser, Templates], Endpoint]) -> Route:
        endpoint = with_error_pages(browser, templates, factory(browser, templates))
        return Route(path, endpoint, methods=["GET", "HEAD"])

    return [
        page("/", home_endpoint),
        page("/search", search_endpoint),
        page(HELP_PATH, help_endpoint),
        page("/project/{name}/", project_endpoint),
        page("/project/{name}/{version}/", project_endpoint),
        page("/project/{name}/{version}/details", details_endpoint),
        page("/advisories/{advisory_id}", advisory_endpoint),
        Route("/static/{digest}/{name}", assets.endpoint, methods=["GET", "HEAD"]),
    ]
