"""The read-ahead walks dependencies: pages a resolver asks next are fetched before it asks.

One client reads one project page through packyard; packyard reads that
project's newest METADATA by range requests, then opens the pages of what it
requires, and so on down the tree. The proof is what survives the upstream's
absence: after the walk, the upstream (`counting_upstream.py`, no `.metadata`
files) is stopped, and a fresh pip resolves the whole tree from packyard
alone, although no client ever asked for the dependencies' pages. What only
an extra requires was never fetched.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import pip_install
from tests.e2e.servers import PackyardProcess, ServerProcess
from tests.e2e.test_upstream_metadata import counting_upstream

pytestmark = pytest.mark.e2e

WALK_TIMEOUT = 30.0


def wait_until_quiet(upstream: ServerProcess, quiet: float = 1.0) -> None:
    """Until the upstream has served no file request for `quiet` seconds (the walk is over)."""
    deadline = time.monotonic() + WALK_TIMEOUT
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        requests = int(httpx.get(upstream.url + "/_sent").json()["requests"])
        if requests != last:
            last, since = requests, time.monotonic()
        elif requests > 0 and time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError(f"the upstream was still being read after {WALK_TIMEOUT} s")


def test_one_page_read_warms_its_dependency_tree(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    wheels = [
        build_wheel(
            dists, "walk-app", "1.0", requires_dist=("walk-lib>=1", 'walk-extra; extra == "dev"')
        ),
        build_wheel(dists, "walk-lib", "1.0", requires_dist=("walk-base",)),
        build_wheel(dists, "walk-base", "1.0"),
        build_wheel(dists, "walk-extra", "1.0"),
    ]
    upstream = counting_upstream(tmp_path / "tree", wheels)
    with (
        upstream,
        PackyardProcess(tmp_path / "data", upstreams=[upstream.url + "/simple/"]) as site,
    ):
        assert httpx.get(site.index_url + "walk-app/").status_code == 200
        wait_until_quiet(upstream)
        upstream.stop()

        result = pip_install(site.index_url, tmp_path / "target", "--dry-run", "walk-app")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Would install walk-app-1.0 walk-base-1.0 walk-lib-1.0" in result.stdout
        # Only what an extra requires was left alone: never fetched, so now unavailable.
        assert httpx.get(site.index_url + "walk-extra/").status_code == 503
