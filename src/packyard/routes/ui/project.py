"""`/project/<name>/`, `/project/<name>/<version>/` and their `details` fragment."""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from packyard.browser.service import Browser
from packyard.errors import InvalidName
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates

# The name-normalization spec's valid names (ASCII only).
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)


def _name(request: Request) -> str:
    """The project segment, checked. Raises InvalidName (a 404 page)."""
    name: str = request.path_params["name"]
    if not _VALID_NAME.fullmatch(name):
        raise InvalidName(name)
    return name


def _canonical(request: Request, name: str) -> Response | None:
    """A 301 to the normalised name's URL, when the URL does not use it."""
    canonical = canonicalize_name(name)
    if canonical == name:
        return None
    path = request.url.path.replace(f"/project/{name}/", f"/project/{canonical}/", 1)
    return RedirectResponse(path, status_code=301)


def project_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /project/<name>/[<version>/]: the project page; the metadata part is
    inline when known, else a placeholder that app.js (or a link) fills in."""

    async def project(request: Request) -> Response:
        name = _name(request)
        redirect = _canonical(request, name)
        if redirect is not None:
            return redirect
        view = await browser.project(name, request.path_params.get("version"))
        context: dict[str, object] = {"project": view}
        if browser.downloads is not None:
            context["downloads"] = await browser.downloads.chart(view.name)
        return templates.render(request, "project.html", context)

    return project


def details_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /project/<name>/<version>/details: the metadata part of the page.

    With `?partial=1` (how app.js asks) only the fragment, to be put in the
    placeholder; otherwise a whole page, for browsers without JavaScript.
    """

    async def details(request: Request) -> Response:
        name = _name(request)
        redirect = _canonical(request, name)
        if redirect is not None:
            return redirect
        version = request.path_params["version"]
        view = await browser.details(name, version)
        context = {"details": view, "name": name, "version": version}
        if request.query_params.get("partial") == "1":
            html = templates.environment.get_template("_details.html").render(
                {**context, "root": request.scope.get("root_path", "").rstrip("/")}
            )
            return HTMLResponse(
                html, headers={**templates.headers, "Cache-Control": "private, max-age=300"}
            )
        return templates.render(request, "details.html", context)

    return details
