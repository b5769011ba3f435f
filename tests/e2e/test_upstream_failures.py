"""An unreachable upstream is a clear 503 naming it; in-house projects are unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install
from tests.e2e.servers import PackyardProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dead_upstream_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackyardProcess]:
    root = tmp_path_factory.mktemp("dead-upstream")
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "inhouse-only", "2.0")
    dead = f"http://127.0.0.1:{free_port()}/simple/"
    site = PackyardProcess(root / "data", upstreams=[dead])
    assert site.import_dir(dists).returncode == 0
    with site:
        yield site


def test_an_unknown_name_gets_503_naming_the_upstream(dead_upstream_site: PackyardProcess) -> None:
    response = httpx.get(dead_upstream_site.index_url + "not-here/")
    assert response.status_code == 503
    assert "127.0.0.1" in response.text
    assert "Upstream" in response.text


def test_in_house_projects_install_while_the_upstream_is_down(
    dead_upstream_site: PackyardProcess, tmp_path: Path
) -> None:
    result = pip_install(dead_upstream_site.index_url, tmp_path, "inhouse-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"inhouse-only": "2.0"}


def test_health_does_not_depend_on_the_upstream(dead_upstream_site: PackyardProcess) -> None:
    assert httpx.get(dead_upstream_site.url + "/healthz").status_code == 200
