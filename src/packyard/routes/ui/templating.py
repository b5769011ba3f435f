"""Jinja2 rendering for the browser: autoescaping on, strict undefined values,
and the headers every page carries.

Values from packages (names, summaries, URLs, yank reasons) are escaped by
Jinja; the only markup inserted as is, the README, was sanitised by
readme_renderer (nh3). A Content-Security-Policy allowing only this server's
own scripts is a second line of defence should anything slip through.

Images, README images included, load from this server and `data:` URLs only,
unless `[browser] image_hosts` lists more: an image from anywhere would tell
its host who read which in-house README, and when.

No page is built from the request's `Host` header, which any client chooses:
with `public_url` set, absolute URLs (the install line's index URL) use it;
without, they are relative and app.js completes them from the browser's own
address bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from packyard.browser.metadata import http_url
from packyard.routes.ui.assets import StaticAssets


def content_security_policy(image_hosts: Sequence[str] = ()) -> str:
    """The pages' policy; `image_hosts` (validated CSP host-sources) may serve images."""
    images = " ".join(("'self'", "data:", *image_hosts))
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def page_headers(image_hosts: Sequence[str] = ()) -> dict[str, str]:
    """The headers of every page, with `content_security_policy(image_hosts)`."""
    return {
        "Content-Security-Policy": content_security_policy(image_hosts),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


CONTENT_SECURITY_POLICY = content_security_policy()
PAGE_HEADERS = page_headers()


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

    def __init__(
        self,
        assets: StaticAssets,
        *,
        public_url: str | None = None,
        image_hosts: Sequence[str] = (),
    ) -> None:
        """`public_url`: the `Settings.public_url` (None: relative URLs only);
        `image_hosts`: the `[browser] image_hosts` allowed to serve images."""
        self.assets = assets
        self.public_url = public_url
        self.headers = page_headers(image_hosts)
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
        (versioned static URLs), `index_url` (absolute with `public_url`, else
        relative), `query` (the search box's text) and
        `viewer` (the signed-in user, or None)."""
        root = request.scope.get("root_path", "").rstrip("/")
        values = {
            "root": root,
            "asset": lambda name: root + self.assets.url(name),
            "index_url": (self.public_url or root + "/") + "simple/",
            "query": "",
            # Set by the admin pages' ViewerMiddleware: who is signed in, or None.
            "viewer": getattr(request.state, "viewer", None),
            **context,
        }
        html = self.environment.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code, headers=self.headers)
