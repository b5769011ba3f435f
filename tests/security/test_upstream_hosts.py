"""Issue 11, item 2: a hostile upstream does not choose where packyard connects.

A hostile upstream on 127.0.0.1 lists files on a stand-in internal service
(127.0.0.1 and localhost on another port) and redirects to it; the service
counts every request and must never be contacted, neither by a client's
download nor by the metadata read-ahead. The upstream's own files still work,
and `file_hosts` lets an administrator allow a files host.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.security.hostile_upstream import (
    HostileUpstream,
    InternalService,
    wheel_name,
    write_wheels,
)
from tests.security.upstream_sites import SiteOverHostile

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Hostile:
    root: Path
    internal: InternalService
    upstream: HostileUpstream


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile-hosts")
    write_wheels(root)
    internal = InternalService(root)
    with internal:
        upstream = HostileUpstream(root, internal.port)
        with upstream:
            yield Hostile(root, internal, upstream)


@pytest.fixture(scope="module")
def site(hostile: Hostile) -> Iterator[SiteOverHostile]:
    with SiteOverHostile(hostile.root / "site", hostile.upstream.index_url) as site:
        yield site


def settle() -> None:
    """Give a read-ahead started by a page the time to run (it is quick on 127.0.0.1)."""
    time.sleep(1.0)


def test_files_on_another_host_are_dropped_and_never_contacted(
    hostile: Hostile, site: SiteOverHostile
) -> None:
    before = hostile.internal.hits()
    page = httpx.get(
        site.index_url + "acme/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert page.status_code == 200
    names = [file["filename"] for file in page.json()["files"]]
    assert names == [wheel_name("acme")]  # 2.0 and 3.0 live elsewhere, othername is not acme's
    for version in ("2.0", "3.0"):
        response = site.get(f"/files/acme/{wheel_name('acme', version)}")
        assert isinstance(response, httpx.Response)
        assert response.status_code == 404
        response = site.get(f"/files/acme/{wheel_name('acme', version)}.metadata")
        assert isinstance(response, httpx.Response)
        assert response.status_code == 404
    settle()  # the read-ahead of the newest release (3.0 on the page) had its chance
    assert hostile.internal.hits() == before
    (event,) = site.wait_for_event("upstream-file-dropped")
    assert event["project"] == "acme"
    assert f"localhost:{hostile.internal.port}" in str(event["reason"])


def test_the_upstreams_own_files_still_work(hostile: Hostile, site: SiteOverHostile) -> None:
    response = site.get(f"/files/acme/{wheel_name('acme')}")
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200
    assert response.content == (hostile.root / "files" / wheel_name("acme")).read_bytes()
    metadata = site.get(f"/files/acme/{wheel_name('acme')}.metadata")
    assert isinstance(metadata, httpx.Response)
    assert metadata.status_code == 200
    assert b"Name: acme" in metadata.content


def test_a_redirect_to_another_host_is_refused(hostile: Hostile, site: SiteOverHostile) -> None:
    before = hostile.internal.hits()
    assert httpx.get(site.index_url + "redirected/").status_code == 200
    settle()
    response = site.get(f"/files/redirected/{wheel_name('redirected')}")
    assert isinstance(response, httpx.Response)
    assert response.status_code == 502, response.text
    assert "not on its own host or file hosts" in response.text
    assert hostile.internal.hits() == before
    assert site.wait_for_event("upstream-connection-refused")


def test_file_hosts_lets_an_administrator_allow_a_files_host(hostile: Hostile) -> None:
    files_host = f"127.0.0.1:{hostile.internal.port}"
    data = hostile.root / "allowing-site"
    with SiteOverHostile(data, hostile.upstream.index_url, file_hosts=(files_host,)) as site:
        page = httpx.get(
            site.index_url + "acme/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        names = [file["filename"] for file in page.json()["files"]]
        # 2.0 is on the allowed host; 3.0 on localhost, another host, still is not.
        assert names == [wheel_name("acme"), wheel_name("acme", "2.0")]
        before = hostile.internal.hits()
        response = site.get(f"/files/acme/{wheel_name('acme', '2.0')}")
        assert isinstance(response, httpx.Response)
        assert response.status_code == 200
        assert response.content == (hostile.root / "files" / wheel_name("acme", "2.0")).read_bytes()
        assert hostile.internal.hits() > before
