"""Issue 11, item 3: nothing unverified reaches a client as if verified.

A hostile upstream on 127.0.0.1 serves a wheel whose bytes do not match its
page's sha256 (to one client, to two at once, and to a Range request on the
uncached file), a wheel whose byte ranges carry another METADATA than the
whole file, and a page that lists another project's file.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.security.hostile_upstream import (
    LYING_REQUIRES,
    TRUE_REQUIRES,
    HostileUpstream,
    InternalService,
    wheel_name,
    write_wheels,
)
from tests.security.upstream_sites import SiteOverHostile, pip_download

pytestmark = pytest.mark.e2e
BAD = f"/files/badhash/{wheel_name('badhash')}"


@dataclass(frozen=True)
class Hostile:
    root: Path
    upstream: HostileUpstream
    site: SiteOverHostile


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile-bytes")
    write_wheels(root)
    internal = InternalService(root)
    upstream = HostileUpstream(root, internal.port)
    site = SiteOverHostile(root / "site", upstream.index_url)
    with internal, upstream, site:
        assert httpx.get(site.index_url + "badhash/").status_code == 200
        yield Hostile(root, upstream, site)


def is_refused(outcome: httpx.Response | str) -> bool:
    """A broken transfer, or an error status naming the upstream: never the file."""
    if isinstance(outcome, str):
        return outcome == "broken"
    return outcome.status_code in (502, 503)


def test_a_download_whose_bytes_do_not_match_is_aborted_and_not_cached(hostile: Hostile) -> None:
    outcome = hostile.site.get(BAD)
    assert is_refused(outcome)
    assert hostile.site.cached_files() == []
    assert hostile.site.wait_for_event("upstream-file-mismatch")


def test_two_concurrent_downloads_are_both_aborted(hostile: Hostile) -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: hostile.site.get(BAD), range(2)))
    assert all(is_refused(outcome) for outcome in outcomes), outcomes
    assert hostile.site.cached_files() == []


def test_a_range_of_the_uncached_file_is_not_passed_through(hostile: Hostile) -> None:
    size = (hostile.root / "files" / wheel_name("badhash")).stat().st_size
    for wanted in ("bytes=0-1023", f"bytes={size - 10}-{size - 1}"):
        outcome = hostile.site.get(BAD, Range=wanted)
        assert is_refused(outcome), outcome
        if isinstance(outcome, httpx.Response):
            assert "sha256" in outcome.text
    assert hostile.site.cached_files() == []


def test_pip_fails_cleanly_and_keeps_nothing(hostile: Hostile, tmp_path: Path) -> None:
    code, output = pip_download(hostile.site.index_url, "badhash==1.0", tmp_path)
    assert code != 0, output
    assert list(tmp_path.iterdir()) == []


def test_metadata_read_by_lying_ranges_is_discarded_and_the_wheel_refused(
    hostile: Hostile, tmp_path: Path
) -> None:
    site = hostile.site
    assert httpx.get(site.index_url + "liar/").status_code == 200
    metadata = site.get(f"/files/liar/{wheel_name('liar')}.metadata")
    assert isinstance(metadata, httpx.Response)
    assert metadata.status_code == 200
    assert f"Requires-Dist: {LYING_REQUIRES}" in metadata.text  # what the ranges said
    assert [project for project, _ in site.metadata_rows()].count("liar") == 1
    (key,) = [key for project, key in site.metadata_rows() if project == "liar"]

    code, output = pip_download(site.index_url, "liar==1.0", tmp_path)
    assert code != 0, output
    assert list(tmp_path.iterdir()) == []

    assert "liar" not in [project for project, _ in site.metadata_rows()]
    assert not (site.data_dir / "files" / key).exists()
    assert not any(path.name == key.rpartition("/")[2] for path in site.data_dir.rglob("*"))
    (event,) = site.wait_for_event("upstream-metadata-mismatch")
    assert event["filename"] == wheel_name("liar")
    assert TRUE_REQUIRES  # the whole wheel's METADATA requires this one


def test_a_page_may_only_list_its_own_projects_files(hostile: Hostile) -> None:
    page = httpx.get(
        hostile.site.index_url + "acme/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert wheel_name("othername") not in [file["filename"] for file in page.json()["files"]]
    response = hostile.site.get(f"/files/acme/{wheel_name('othername')}")
    assert isinstance(response, httpx.Response)
    assert response.status_code == 404
    events = hostile.site.wait_for_event("upstream-file-dropped")
    assert any(wheel_name("othername") in str(event["reason"]) for event in events)
