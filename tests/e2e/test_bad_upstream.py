"""A misbehaving upstream gives clear 502/503 answers or a broken transfer, never a
500, and never leaves a partial or mismatched file in the site's cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.bad_upstream import BadUpstreamProcess, content, filename
from tests.e2e.cached_site import ConfiguredPackyard

pytestmark = pytest.mark.e2e

BROKEN = "broken transfer"


@dataclass(frozen=True)
class BadSite:
    upstream: BadUpstreamProcess
    site: ConfiguredPackyard


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadSite]:
    root = tmp_path_factory.mktemp("bad-upstream")
    upstream = BadUpstreamProcess(root)
    # A 1 s upstream timeout, so the `slow` project is a timeout, not a wait.
    site = ConfiguredPackyard(root / "site-data", upstream.index_url, page_ttl=600, timeout=1.0)
    with upstream, site:
        yield BadSite(upstream, site)


def get(site: ConfiguredPackyard, path: str) -> httpx.Response | str:
    """The response, or BROKEN when the connection broke off mid-body."""
    try:
        return httpx.get(site.url + path, timeout=30)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return BROKEN


def file_path(project: str) -> str:
    return f"/files/{project}/{filename(project)}"


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("drop-mid-file", {BROKEN}),
        # Whether the break is seen before the first bytes are sent or after
        # depends on how the few bytes arrive: a 503 or a broken transfer.
        ("wrong-length", {BROKEN, 503}),
        ("bad-hash", {BROKEN}),
        ("short-file", {502}),
    ],
)
def test_a_bad_file_is_cut_off_or_refused_and_never_cached(
    bad_site: BadSite, project: str, expected: set[int | str]
) -> None:
    page = get(bad_site.site, f"/simple/{project}/")
    assert isinstance(page, httpx.Response)
    assert page.status_code == 200
    for _ in range(2):  # the second time too: nothing was cached the first time
        outcome = get(bad_site.site, file_path(project))
        if isinstance(outcome, httpx.Response):
            assert outcome.status_code in expected, outcome.text
            assert bad_site.upstream.url in outcome.text
        else:
            assert outcome in expected
    assert not any(project in path.name for path in bad_site.site.cached_blobs())


@pytest.mark.parametrize(("project", "status"), [("html-as-json", 502), ("slow", 503)])
def test_a_bad_page_is_a_clear_error_naming_the_upstream(
    bad_site: BadSite, project: str, status: int
) -> None:
    response = get(bad_site.site, f"/simple/{project}/")
    assert isinstance(response, httpx.Response)
    assert response.status_code == status
    assert bad_site.upstream.url in response.text


def test_a_good_file_of_the_same_upstream_is_cached(bad_site: BadSite) -> None:
    assert isinstance(page := get(bad_site.site, "/simple/good/"), httpx.Response)
    assert page.status_code == 200
    response = get(bad_site.site, file_path("good"))
    assert isinstance(response, httpx.Response)
    assert response.content == content("good")
    # The file is committed just after the client got its last byte.
    deadline = time.monotonic() + 10
    while not bad_site.site.cached_blobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [path.name for path in bad_site.site.cached_blobs()] == [filename("good")]
