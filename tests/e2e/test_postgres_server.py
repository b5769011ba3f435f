"""`packyard serve` and `packyard import` on a real PostgreSQL server, driven by pip."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.e2e.clients import pip_install
from tests.e2e.servers import PackyardProcess
from tests.postgres import PostgresServer

pytestmark = pytest.mark.e2e

# The server notices another process's write within its poll interval on
# PostgreSQL (db.freshness, 0.5 s); the rest is room for a slow machine.
VISIBLE_WITHIN_SECONDS = 10


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """PostgreSQL only: this module is the PostgreSQL variant of the e2e tests."""
    with postgres_server.database() as url:
        yield url


def wait_for_page(url: str, text: str) -> httpx.Response:
    deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
    while True:
        response = httpx.get(url)
        if text in response.text or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_pip_installs_what_was_imported_into_postgresql(tmp_path: Path, database_url: str) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-app", "1.0", requires_dist=("acme-core>=1.0",))
    build_wheel(dists, "acme-core", "1.0")
    build_sdist(dists, "acme-core", "1.0")
    site = PackyardProcess(tmp_path / "data", database_url=database_url)

    imported = site.import_dir(dists)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "3 added" in imported.stdout

    with site:
        result = pip_install(site.index_url, tmp_path / "target", "acme-app")
        assert result.returncode == 0, result.stdout + result.stderr
        assert (tmp_path / "target" / "acme_app" / "__init__.py").is_file()
        assert (tmp_path / "target" / "acme_core" / "__init__.py").is_file()

        # `packyard import` in another process while the server runs.
        later = tmp_path / "later"
        later.mkdir()
        build_wheel(later, "acme-core", "2.0")
        assert site.import_dir(later).returncode == 0
        page = wait_for_page(site.index_url + "acme-core/", "acme_core-2.0-py3-none-any.whl")
        assert "acme_core-2.0-py3-none-any.whl" in page.text

    # Everything went to PostgreSQL: no SQLite database appeared in the data directory.
    assert not (tmp_path / "data" / "packyard.db").exists()
