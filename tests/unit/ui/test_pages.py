"""The browser's pages, over a real in-house store and an in-memory upstream."""

from __future__ import annotations

import re

import pytest

from packyard.browser import service
from tests.unit.ui.conftest import Site

pytestmark = pytest.mark.anyio


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


async def test_home_counts_and_recent_releases(site: Site) -> None:
    response = await site.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    assert "<strong>3</strong> in-house projects" in html
    assert "<strong>0</strong> public projects" in html
    assert 'href="/project/acme-tools/2.0b1/"' in html
    assert 'href="simple/"' in html  # how to point an installer at the index
    await site.client.get("/project/httpx/")
    await site.recorder.settle()  # names are written in the background
    assert "<strong>1</strong> public projects" in (await site.client.get("/")).text


async def test_in_house_project_page(site: Site) -> None:
    response = await site.client.get("/project/acme-tools/")
    assert response.status_code == 200
    html = response.text
    assert "Acme.Tools 1.1" in html  # the newest final release, not 2.0b1
    assert "pip install Acme.Tools" in html
    assert "in-house</span>" in html
    assert '<h1 id="user-content-acme-tools">' in html  # README rendered as GFM
    assert "<strong>them</strong>" in html
    assert 'href="/project/acme-core/"' in html  # a dependency links to its page
    assert "[fast]" in html
    assert "python_version &gt;= &#34;3.11&#34;" in html  # its marker, escaped
    assert "Python &gt;=3.11" in html  # requires-python
    assert 'href="https://git.example/acme"' in html
    assert "data-details-url" not in html  # in-house metadata is shown at once
    assert re.search(r"[0-9a-f]{64}", html)  # sha256 of each file
    assert "pre-release" in html  # 2.0b1 in the history


async def test_hostile_values_are_escaped(site: Site) -> None:
    html = (await site.client.get("/project/acme-tools/")).text
    assert "<script" not in html.replace('<script src="/static/', "")
    assert "onerror" not in html
    assert all(not href.lower().startswith("javascript:") for href in hrefs(html))
    assert "javascript:alert(1)</span>" in html  # shown as text, not a link
    core = (await site.client.get("/project/acme-core/")).text
    assert "&lt;script&gt;window.xss=1&lt;/script&gt;" in core  # the summary, escaped


async def test_used_by_lists_in_house_dependents(site: Site) -> None:
    html = (await site.client.get("/project/acme-core/")).text
    used_by = html[html.index('id="used-by"') :]
    assert 'href="/project/acme-tools/"' in used_by


async def test_version_page_and_newer_version_note(site: Site) -> None:
    response = await site.client.get("/project/acme-tools/1.0/")
    assert response.status_code == 200
    assert "Acme.Tools 1.0" in response.text
    assert "newer version available: 1.1" in response.text
    assert "pip install Acme.Tools==1.0" in response.text
    assert (await site.client.get("/project/acme-tools/9.9/")).status_code == 404


async def test_yanked_release_shows_its_reason(site: Site) -> None:
    site.yank("acme_tools-1.1-py3-none-any.whl", "Broken <b>build</b>")
    html = (await site.client.get("/project/acme-tools/")).text
    assert "Acme.Tools 1.0" in html  # the default skips the yanked release
    assert "yanked</span>" in html
    assert "Reason: Broken &lt;b&gt;build&lt;/b&gt;" in html


async def test_sdist_only_project_reads_pkg_info(site: Site) -> None:
    html = (await site.client.get("/project/acme-sdist-only/")).text
    assert "Only a source archive" in html
    assert "Source" in html


async def test_unnormalised_name_redirects(site: Site) -> None:
    response = await site.client.get("/project/Acme.Tools/1.0/")
    assert response.status_code == 301
    assert response.headers["location"] == "/project/acme-tools/1.0/"


async def test_unknown_project_is_a_404_with_suggestions(site: Site) -> None:
    response = await site.client.get("/project/acme/")
    assert response.status_code == 404
    assert "was not found" in response.text
    assert 'href="/project/acme-tools/"' in response.text  # did you mean
    assert (await site.client.get("/project/-bad-/")).status_code == 404
    assert (await site.client.get("/nowhere")).status_code == 404


async def test_public_project_loads_its_metadata_asynchronously(site: Site) -> None:
    page = await site.client.get("/project/httpx/")
    assert page.status_code == 200
    assert "public: pypi" in page.text
    assert 'data-details-url="/project/httpx/0.28.1/details"' in page.text
    assert site.upstream.metadata_requests == 0  # the page did not wait for the upstream
    assert 'href="/files/httpx/httpx-0.28.1-py3-none-any.whl"' in page.text  # never upstream
    assert "javascript:" not in page.text  # an unsafe provenance URL is dropped

    fragment = await site.client.get("/project/httpx/0.28.1/details?partial=1")
    assert fragment.status_code == 200
    assert not fragment.text.lstrip().startswith("<!DOCTYPE")
    assert 'href="/project/idna/"' in fragment.text
    assert "extra: http2" in fragment.text

    no_js = await site.client.get("/project/httpx/0.28.1/details")
    assert no_js.text.startswith("<!DOCTYPE html>")
    again = await site.client.get("/project/httpx/")
    assert "data-details-url" not in again.text  # now known: shown at once
    assert "The next generation HTTP client." in again.text
    assert site.upstream.metadata_requests == 1


async def test_search(site: Site) -> None:
    response = await site.client.get("/search", params={"q": "acme"})
    assert response.status_code == 200
    assert 'href="/project/acme-tools/"' in response.text
    assert "3</strong> projects" in response.text
    exact = await site.client.get("/search", params={"q": "core"})
    projects = [href for href in hrefs(exact.text) if href.startswith("/project/")]
    assert projects == ["/project/acme-core/"]
    depends = await site.client.get("/search", params={"q": "depends:acme_core"})
    assert "1</strong> project " in depends.text


async def test_search_stops_counting_where_pages_stop(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_RESULTS", 2)
    response = await site.client.get("/search", params={"q": "acme"})
    assert "2+</strong> projects" in response.text
    assert 'href="/project/acme-tools/"' in response.text


async def test_public_projects_are_searchable_once_served(site: Site) -> None:
    assert "0</strong> projects" in (await site.client.get("/search?q=httpx")).text
    await site.client.get("/simple/httpx/")  # a client asks the index, not the browser
    await site.recorder.settle()  # names are written in the background
    results = await site.client.get("/search?q=httpx")
    assert "public: pypi" in results.text
    await site.client.get("/project/httpx/0.28.1/details")
    by_summary = await site.client.get("/search", params={"q": "generation source:public"})
    assert 'href="/project/httpx/"' in by_summary.text


async def test_search_syntax_error_is_a_message(site: Site) -> None:
    response = await site.client.get("/search", params={"q": 'colour:red "open'})
    assert response.status_code == 400
    assert "not closed" in response.text
    assert (await site.client.get("/search", params={"q": "", "page": "x"})).status_code == 200


async def test_upstream_failure_is_an_error_page(site: Site) -> None:
    site.upstream.down = True
    response = await site.client.get("/project/httpx/")
    assert response.status_code == 503
    assert "could not be reached" in response.text
    assert (await site.client.get("/project/acme-core/")).status_code == 200


async def test_static_assets_are_versioned(site: Site) -> None:
    html = (await site.client.get("/")).text
    css = re.search(r'href="(/static/[0-9a-f]{16}/app\.css)"', html)
    assert css is not None
    response = await site.client.get(css.group(1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    assert (await site.client.get("/static/0000000000000000/app.css")).status_code == 404
