"""CI keeps installing when the upstream is down: pages and files come from the site's cache.

An upstream packyard publishes a small dependency tree; the site under test
proxies it with `page_ttl = 0` (every page revalidated in the background, so
the upstream's absence is noticed at once). pip and uv install through the
site, `packyard prefetch` caches a second tree, then the upstream process is
stopped: fresh clients with empty caches must still install both, a project
never fetched is a 503 naming the upstream, and a restarted site still serves
from its cache: on disk, or (the `postgresql+s3` variant, `backends.py`) in
the database and the bucket.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.e2e.backends import POSTGRESQL_S3, SQLITE, backend_environment, stored_keys
from tests.e2e.cached_site import ConfiguredPackyard
from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.servers import PackyardProcess, packyard

pytestmark = pytest.mark.e2e

APP = {"offline-app": "1.0", "offline-lib": "1.0", "offline-base": "1.0"}
PREFETCHED = {"prefetched-app": "1.0", "prefetched-dep": "1.0"}


def build_tree(directory: Path) -> None:
    build_wheel(directory, "offline-app", "1.0", requires_dist=("offline-lib>=1",))
    build_wheel(directory, "offline-lib", "1.0", requires_dist=("offline-base",))
    build_sdist(directory, "offline-lib", "1.0")
    build_wheel(directory, "offline-base", "1.0")
    build_wheel(directory, "prefetched-app", "1.0", requires_dist=("prefetched-dep",))
    build_wheel(directory, "prefetched-dep", "1.0")
    build_wheel(directory, "never-fetched", "1.0")


def install_with_both(site: PackyardProcess, target: Path, name: str) -> dict[str, str]:
    """Install `name` with pip, then with uv, each into a fresh target; pip's result."""
    result = pip_install(site.index_url, target / "pip", name)
    assert result.returncode == 0, result.stdout + result.stderr
    uv = uv_install(site.index_url, target / "uv", name)
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert installed(target / "uv") == installed(target / "pip")
    return installed(target / "pip")


@pytest.mark.parametrize("backend", [SQLITE, POSTGRESQL_S3])
def test_installs_keep_working_while_the_upstream_is_down(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, backend: str
) -> None:
    root = tmp_path_factory.mktemp("offline")
    dists = root / "dists"
    dists.mkdir()
    build_tree(dists)
    upstream = PackyardProcess(root / "upstream-data")
    imported = upstream.import_dir(dists)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    site = ConfiguredPackyard(root / "site-data", upstream.index_url, page_ttl=0)
    with backend_environment(request, backend) as environment:
        site.environment.update(environment)
        with upstream, site:
            assert install_with_both(site, root / "online", "offline-app") == APP
            result = packyard("prefetch", "--index-url", site.index_url, "prefetched-app")
            assert result.returncode == 0, result.stdout + result.stderr
            assert "2 of 2 distributions are in the server's cache" in result.stdout

            upstream.stop()
            assert install_with_both(site, root / "offline", "offline-app") == APP
            assert install_with_both(site, root / "prefetched", "prefetched-app") == PREFETCHED
            response = httpx.get(site.index_url + "never-fetched/")
            assert response.status_code == 503
            assert f"127.0.0.1:{upstream.port}" in response.text
            assert "stale-if-error" in site.log.read_text()

            site.stop()  # a restart while the upstream is down: the cache remains
            site.start()
            assert install_with_both(site, root / "restarted", "offline-app") == APP
        if backend == POSTGRESQL_S3:  # that cache was the bucket, not the data directory
            assert stored_keys(environment, "cache/files")
            assert site.cached_blobs() == []
