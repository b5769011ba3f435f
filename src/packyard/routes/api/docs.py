"""`/api/v1/docs`: the API's reference as a page of this server, with no third-party code.

FastAPI's default docs page loads Swagger UI's script and style from a CDN:
code from another host, on the origin where admins sign in. This page is
built here from the OpenAPI document instead: every operation with its
method, path and summary, a link to `openapi.json`, and how to browse that
document in a viewer of one's own. It has no script at all, and the pages'
Content-Security-Policy (nothing but this server's own resources).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

# The browser pages' policy (`routes/ui/templating.py`): this server's own
# resources only; the page itself uses none.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
_METHODS = ("get", "put", "post", "patch", "delete")


def docs_endpoint(
    openapi: Callable[[], Mapping[str, Any]],
) -> Callable[[Request], HTMLResponse]:
    """GET /docs: the page for the document `openapi()` returns (built once)."""
    page: list[bytes] = []

    def docs(request: Request) -> HTMLResponse:
        if not page:
            page.append(render_docs(openapi()).encode())
        return HTMLResponse(page[0], headers=HEADERS)

    return docs


def api_index(request: Request) -> JSONResponse:
    """GET /api/v1/: where the API's OpenAPI document and its page are."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    links = {"openapi": root + "/openapi.json", "docs": root + "/docs"}
    return JSONResponse(links, headers={"Cache-Control": "no-cache"})


def render_docs(document: Mapping[str, Any]) -> str:
    """The HTML page of an OpenAPI document: its title, summary and operations."""
    info = document.get("info", {})
    title = escape(str(info.get("title", "API")))
    rows = "".join(
        f"<tr><td><code>{method.upper()}</code></td><td><code>/api/v1{escape(path)}</code></td>"
        f"<td>{escape(str(operation.get('summary', '')))}</td></tr>\n"
        for path, item in sorted(document.get("paths", {}).items())
        for method, operation in item.items()
        if method in _METHODS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>{escape(str(info.get("summary", "")))}</p>
<p>The OpenAPI document: <a href="openapi.json">/api/v1/openapi.json</a>.
To browse it, open that file in an OpenAPI viewer you run yourself (Swagger UI
or Redoc served from your own machine, or an API client such as Postman,
Insomnia or Bruno). This server serves no viewer: the page where
administrators sign in runs no third-party code.</p>
<p>Every call takes <code>Authorization: Bearer &lt;token&gt;</code> or HTTP
Basic credentials.</p>
<table>
<thead><tr><th>method</th><th>path</th><th>what it does</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"""
