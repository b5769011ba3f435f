"""No third-party code on the admin origin: `/api/v1/docs` loads nothing from another host.

An admin who opens the API docs must not run code that a CDN (or whoever
controls it) serves: that page is on the origin where admins sign in. Each
resource the page refers to must be served by packyard itself, and its
Content-Security-Policy must name no other host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.e2e.servers import PackyardProcess

pytestmark = pytest.mark.e2e
# CSP source expressions that name no host (CSP3 §2.3.1).
_LOCAL_SOURCES = {"'self'", "'none'", "data:", "'unsafe-inline'"}


class References(HTMLParser):
    """Every URL the page loads or links to: src, href, and CSS url(...)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "data") and value:
                self.urls.append(value)
            if name == "style" and value:
                self.urls += re.findall(r"url\(['\"]?([^'\")]+)", value)

    def handle_data(self, data: str) -> None:
        self.urls += re.findall(r"""(?:src|href)\s*[:=]\s*['"]([^'"]+)""", data)
        self.urls += re.findall(r"url\(['\"]?([^'\")]+)", data)
        self.urls += re.findall(r"https?://[^\s'\"<>)]+", data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackyardProcess]:
    root: Path = tmp_path_factory.mktemp("api-docs")
    with PackyardProcess(root / "data") as process:
        yield process


def test_the_docs_page_loads_nothing_from_another_host(server: PackyardProcess) -> None:
    page_url = server.url + "/api/v1/docs"
    page = httpx.get(page_url)
    assert page.status_code == 200
    parser = References()
    parser.feed(page.text)

    ours = urlsplit(server.url).netloc
    for url in parser.urls:
        absolute = urljoin(page_url, url)
        parts = urlsplit(absolute)
        assert parts.scheme in ("http", "https"), url
        assert parts.netloc == ours, f"{url!r} is on another host"
        # Every resource it refers to is served by packyard itself.
        assert httpx.get(absolute).status_code == 200, url


def test_the_openapi_document_is_served(server: PackyardProcess) -> None:
    document = httpx.get(server.url + "/api/v1/openapi.json")
    assert document.status_code == 200
    assert "/tokens" in "".join(document.json()["paths"])
    assert "/tokens" in httpx.get(server.url + "/api/v1/docs").text


def test_the_docs_page_has_a_content_security_policy_naming_no_other_host(
    server: PackyardProcess,
) -> None:
    page = httpx.get(server.url + "/api/v1/docs")
    policy = page.headers.get("content-security-policy")
    assert policy, "no Content-Security-Policy"
    directives = {
        name: sources
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    for name, sources in directives.items():
        for source in sources:
            assert source in _LOCAL_SOURCES, f"{name} allows {source!r}"
    assert page.headers.get("x-content-type-options") == "nosniff"
