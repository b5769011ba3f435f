"""PEP 658 metadata for every upstream wheel, read with range requests (the caching proxy issue).

The upstream is `counting_upstream.py`: a static PEP 503 tree with no
`.metadata` files, no sizes, and a counter of the file bytes it sends. One
upstream honours Range; the other answers every request with the whole file.
The site runs on the embedded defaults, then on PostgreSQL with its blobs in
a bucket of the session's SeaweedFS (`backends.py`), where the extracted
METADATA is indexed in the database and kept in the bucket.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.backends import POSTGRESQL_S3, SQLITE, backend_environment
from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.servers import PYTHON, PackyardProcess, ServerProcess, free_port, write_static_tree

pytestmark = pytest.mark.e2e

JSON = "application/vnd.pypi.simple.v1+json"
BIG_MEMBER = 20 * 1024 * 1024


def counting_upstream(
    root: Path, files: list[Path], *, ignore_ranges: bool = False
) -> ServerProcess:
    """`counting_upstream.py` serving a static tree of `files` (not started)."""
    write_static_tree(root, files)
    port = free_port()
    script = Path(__file__).with_name("counting_upstream.py")
    argv = [PYTHON, str(script), str(root), str(port)]
    if ignore_ranges:
        argv.append("--ignore-ranges")
    return ServerProcess(argv, port, root.parent / f"counting-{port}.log", "/simple/")


def sent(upstream: ServerProcess) -> int:
    """File bytes the upstream has sent so far."""
    return int(httpx.get(upstream.url + "/_sent").json()["bytes"])


def wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


def metadata_url(site: PackyardProcess, project: str, wheel: Path) -> str:
    return f"{site.url}/files/{project}/{wheel.name}.metadata"


def json_page(site: PackyardProcess, project: str) -> dict[str, object]:
    response = httpx.get(site.index_url + project + "/", headers={"Accept": JSON})
    assert response.status_code == 200, response.text
    page: dict[str, object] = response.json()
    return page


@dataclass(frozen=True)
class Sites:
    upstream: ServerProcess
    site: PackyardProcess
    wheels: dict[str, Path]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("metadata-dists")
    noise = {"meta_big/noise.bin": os.urandom(BIG_MEMBER)}
    return {
        "meta-app": build_wheel(folder, "meta-app", "1.0", requires_dist=("meta-dep>=1",)),
        "meta-dep": build_wheel(folder, "meta-dep", "1.2", requires_python=">=3.8"),
        "meta-big": build_wheel(folder, "meta-big", "1.0", extra_files=noise),
    }


@pytest.fixture(scope="module", params=[SQLITE, POSTGRESQL_S3])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Where the sites keep their state: their data directory, then PostgreSQL and a bucket."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory,
    dists: dict[str, Path],
    request: pytest.FixtureRequest,
    backend_name: str,
) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("ranged")
    upstream = counting_upstream(root / "tree", list(dists.values()))
    site = PackyardProcess(root / "data", upstreams=[upstream.url + "/simple/"])
    with backend_environment(request, backend_name) as environment:
        site.environment.update(environment)
        with upstream, site:
            yield Sites(upstream, site, dists)


def test_upstream_pages_advertise_core_metadata_for_every_wheel(sites: Sites) -> None:
    page = json_page(sites.site, "meta-dep")
    files = page["files"]
    assert isinstance(files, list)
    assert files[0]["core-metadata"] is True or "sha256" in files[0]["core-metadata"]
    html = httpx.get(sites.site.index_url + "meta-dep/", headers={"Accept": "text/html"}).text
    assert "data-core-metadata=" in html


def test_metadata_files_are_the_wheels_own_bytes_and_then_hashed_in_the_page(
    sites: Sites,
) -> None:
    wheel = sites.wheels["meta-dep"]
    response = httpx.get(metadata_url(sites.site, "meta-dep", wheel))
    assert response.status_code == 200, response.text
    assert response.content == wheel_metadata(wheel)
    digest = hashlib.sha256(response.content).hexdigest()
    files = json_page(sites.site, "meta-dep")["files"]
    assert isinstance(files, list)
    assert files[0]["core-metadata"] == {"sha256": digest}
    html = httpx.get(sites.site.index_url + "meta-dep/", headers={"Accept": "text/html"}).text
    assert f'data-core-metadata="sha256={digest}"' in html


def test_the_metadata_of_a_20_mb_wheel_costs_under_1_mb(sites: Sites) -> None:
    wheel = sites.wheels["meta-big"]
    assert wheel.stat().st_size > BIG_MEMBER
    before = sent(sites.upstream)
    response = httpx.get(metadata_url(sites.site, "meta-big", wheel))
    assert response.status_code == 200, response.text
    assert response.content == wheel_metadata(wheel)
    assert sent(sites.upstream) - before < 1024 * 1024
    again = httpx.get(metadata_url(sites.site, "meta-big", wheel))
    assert again.content == response.content
    assert sent(sites.upstream) - before < 1024 * 1024


def test_uv_installs_through_the_advertised_metadata(sites: Sites, tmp_path: Path) -> None:
    result = uv_install(sites.site.index_url, tmp_path, "meta-app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"meta-app": "1.0", "meta-dep": "1.2"}


def test_pip_installs_through_the_advertised_metadata(sites: Sites, tmp_path: Path) -> None:
    result = pip_install(sites.site.index_url, tmp_path, "meta-app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"meta-app": "1.0", "meta-dep": "1.2"}


def test_an_upstream_that_ignores_ranges_costs_one_download_then_nothing(
    tmp_path: Path, dists: dict[str, Path], request: pytest.FixtureRequest, backend_name: str
) -> None:
    wheel = dists["meta-big"]
    size = wheel.stat().st_size
    upstream = counting_upstream(tmp_path / "tree", [wheel], ignore_ranges=True)
    site = PackyardProcess(tmp_path / "data", upstreams=[upstream.url + "/simple/"])
    # A database and bucket of its own: the module's site has extracted this wheel's METADATA.
    with backend_environment(request, backend_name) as environment, upstream:
        site.environment.update(environment)
        with site:
            response = httpx.get(metadata_url(site, "meta-big", wheel), timeout=60)
            assert response.status_code == 200, response.text
            assert response.content == wheel_metadata(wheel)
            first = sent(upstream)
            # One whole download; the abandoned first response adds at most what
            # the socket buffers took before the connection was closed.
            assert size <= first < 2 * size
            assert httpx.get(metadata_url(site, "meta-big", wheel)).content == response.content
            assert sent(upstream) == first
        with site:  # a restart: the metadata is kept in the store
            again = httpx.get(metadata_url(site, "meta-big", wheel))
            assert again.content == response.content
            assert sent(upstream) == first
