"""An upstream that only speaks PEP 503 HTML (a static tree): packyard falls back to it."""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_download, pip_install, uv_install
from tests.e2e.servers import PackyardProcess, StaticIndexProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def html_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackyardProcess]:
    root = tmp_path_factory.mktemp("html-upstream")
    dists = root / "dists"
    dists.mkdir()
    wheels = [
        build_wheel(dists, "static-dep", "1.5"),
        build_wheel(dists, "static-app", "3.1", requires_dist=("static-dep>=1",)),
    ]
    with (
        StaticIndexProcess(root / "tree", wheels) as upstream,
        PackyardProcess(root / "data", upstreams=[upstream.index_url]) as site,
    ):
        yield site


def test_pip_installs_through_an_html_only_upstream(
    html_site: PackyardProcess, tmp_path: Path
) -> None:
    result = pip_install(html_site.index_url, tmp_path, "static-app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"static-app": "3.1", "static-dep": "1.5"}


def test_uv_installs_through_an_html_only_upstream(
    html_site: PackyardProcess, tmp_path: Path
) -> None:
    result = uv_install(html_site.index_url, tmp_path, "static-app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"static-app": "3.1", "static-dep": "1.5"}


def test_the_json_page_of_an_html_upstream_points_at_this_server(
    html_site: PackyardProcess,
) -> None:
    response = httpx.get(
        html_site.index_url + "static-dep/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    assert response.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    (file,) = response.json()["files"]
    url = httpx.URL(html_site.index_url + "static-dep/").join(file["url"])
    assert url.host == "127.0.0.1"
    assert url.port == html_site.port
    assert url.path.startswith("/files/")
    assert file["hashes"]["sha256"]


def test_pip_download_streams_the_upstream_file_intact(
    html_site: PackyardProcess, tmp_path: Path
) -> None:
    result = pip_download(html_site.index_url, tmp_path, "static-dep==1.5")
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    page = httpx.get(
        html_site.index_url + "static-dep/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    assert sha256(wheel.read_bytes()).hexdigest() == page["files"][0]["hashes"]["sha256"]
