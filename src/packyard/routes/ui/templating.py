"""Jinja2 rendering for the browser: autoescaping on, strict undefined values,
and the headers every page carries.

Values from packages (names, summaries, URLs, yank reasons) are escaped by
Jinja; the only markup inserted as is, the README, was sanitised by
readme_renderer (nh3). A Content-Security-Policy allowing only this server's
own scripts is a second line of defence should anything slip through.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from packyard.browser.metadata import http_url
from packyard.routes.ui.assets import StaticAssets

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def filesize(size: int | None) -> str:
    """`1.5 kB`-style sizes (decimal units, as PyPI shows them)."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""


class Templates:
    """The browser's templates (`packyard/templates`) and static assets."""

    def __init__(self, assets: StaticAssets) -> None:
        self.assets = assets
        self.environment = Environment(
            loader=PackageLoader("packyard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters["filesize"] = filesize
        self.environment.filters["when"] = when
        self.environment.tests["http_url"] = http_url

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        status_code: int = 200,
    ) -> HTMLResponse:
        """Render `template` with `context` plus `root` (the mount path), `asset`
        (versioned static URLs), `index_url`, `query` (the search box's text) and
        `viewer` (the signed-in user, or None)."""
        root = request.scope.get("root_path", "").rstrip("/")
        values = {
            "root": root,
            "asset": lambda name: root + self.assets.url(name),
            "index_url": str(request.base_url) + "simple/",
            "query": "",
            # Set by the admin pages' ViewerMiddleware: who is signed in, or None.
            "viewer": getattr(request.state, "viewer", None),
            **context,
        }
        html = self.environment.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
