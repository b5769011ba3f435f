"""The index and file routes of a real server, checked header by header (STANDARDS §1, §4)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import TwoSites

pytestmark = pytest.mark.e2e

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
WHEEL = "/files/acme-core/acme_core-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple/Acme_Core/", "/simple/acme-core/"),
        ("/simple/acme-core", "/simple/acme-core/"),
        ("/simple", "/simple/"),
    ],
)
def test_unnormalised_and_slashless_urls_redirect(
    two_sites: TwoSites, path: str, location: str
) -> None:
    response = httpx.get(two_sites.site.url + path)
    assert response.status_code == 301
    assert response.headers["location"].endswith(location)


def test_pip_gets_json_with_a_strong_etag_and_a_304(two_sites: TwoSites) -> None:
    url = two_sites.site.index_url + "acme-core/"
    first = httpx.get(url, headers={"Accept": PIP_ACCEPT})
    assert first.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert first.headers["vary"] == "Accept"
    etag = first.headers["etag"]
    assert not etag.startswith("W/")
    again = httpx.get(url, headers={"Accept": PIP_ACCEPT, "If-None-Match": etag})
    assert again.status_code == 304


def test_an_unacceptable_type_gets_406(two_sites: TwoSites) -> None:
    response = httpx.get(
        two_sites.site.index_url + "acme-core/", headers={"Accept": "application/xml"}
    )
    assert response.status_code == 406


def test_an_invalid_name_is_a_clear_404(two_sites: TwoSites) -> None:
    response = httpx.get(two_sites.site.index_url + "-bad-/")
    assert response.status_code == 404
    assert "not a valid project name" in response.text


def test_files_answer_the_three_range_forms(two_sites: TwoSites) -> None:
    url = two_sites.site.url + WHEEL
    size = int(httpx.head(url).headers["content-length"])
    for header, expected in [
        ("bytes=0-9", f"bytes 0-9/{size}"),
        ("bytes=10-", f"bytes 10-{size - 1}/{size}"),
        ("bytes=-16", f"bytes {size - 16}-{size - 1}/{size}"),
    ]:
        response = httpx.get(url, headers={"Range": header})
        assert response.status_code == 206
        assert response.headers["content-range"] == expected
    beyond = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


def test_head_and_get_send_the_same_file_headers(two_sites: TwoSites) -> None:
    url = two_sites.site.url + WHEEL
    head, get = httpx.head(url), httpx.get(url)
    for name in ("content-length", "etag", "accept-ranges", "content-type"):
        assert head.headers[name] == get.headers[name]
    assert head.headers["accept-ranges"] == "bytes"
    assert "content-encoding" not in get.headers


@pytest.mark.parametrize(
    "path",
    ["/files/../packyard.db", "/files/acme-core/..%2F..%2Fpackyard.db", "/files/acme-core/../x"],
)
def test_paths_outside_the_store_are_404(two_sites: TwoSites, path: str) -> None:
    # httpx would normalise `..` away; send the raw target as a client could.
    with httpx.Client() as client:
        request = client.build_request("GET", two_sites.site.url + "/")
        request.url = request.url.copy_with(raw_path=path.encode())
        assert client.send(request).status_code == 404
