"""Yanks, deletions and the name allow-list, run from the CLI against a running server.

The running `packyard serve` must show each change on its very next request
(the serial is bumped in the same transaction), and pip must honour yanks
(STANDARDS §1.20): an unpinned requirement skips a yanked release, `==` still
installs it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.e2e.clients import installed, pip_install
from tests.e2e.servers import PYTHON, PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Sites:
    upstream: PackyardProcess
    site: PackyardProcess
    local_dir: Path


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    """An upstream packyard with public-lib 1.0 and 2.0, and the site under test
    with acme-core 1.0 and 1.1 and acme-old 1.0 of its own, proxying the upstream."""
    root = tmp_path_factory.mktemp("governance")
    upstream_dir, local_dir = root / "upstream-dists", root / "local-dists"
    upstream_dir.mkdir()
    local_dir.mkdir()
    build_wheel(upstream_dir, "public-lib", "1.0")
    build_wheel(upstream_dir, "public-lib", "2.0")
    build_sdist(upstream_dir, "public-lib", "2.0")
    build_wheel(local_dir, "acme-core", "1.0")
    build_wheel(local_dir, "acme-core", "1.1")
    build_sdist(local_dir, "acme-core", "1.1")
    build_wheel(local_dir, "acme-old", "1.0")
    upstream = PackyardProcess(root / "upstream-data")
    site = PackyardProcess(root / "site-data", upstreams=[upstream.index_url])
    for server, dists in ((upstream, upstream_dir), (site, local_dir)):
        result = server.import_dir(dists)
        assert result.returncode == 0, result.stdout + result.stderr
    with upstream, site:
        yield Sites(upstream, site, local_dir)


def cli(site: PackyardProcess, *args: str) -> str:
    """Run `packyard ARGS --data-dir <site's>`; its stdout, after checking it succeeded."""
    result = packyard(*args, "--data-dir", str(site.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def yanked_in_html(server: PackyardProcess, project: str) -> dict[str, str | None]:
    """filename -> the `data-yanked` value (None when the anchor has none)."""
    page = httpx.get(f"{server.index_url}{project}/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    found: dict[str, str | None] = {}
    for attributes, filename in re.findall(r"<a ([^>]*)>([^<]+)</a>", page.text):
        match = re.search(r'data-yanked="([^"]*)"', attributes)
        found[filename] = match.group(1) if match else None
    return found


def yanked_in_json(server: PackyardProcess, project: str) -> dict[str, object]:
    page = httpx.get(f"{server.index_url}{project}/", headers={"Accept": JSON})
    assert page.status_code == 200
    return {entry["filename"]: entry.get("yanked") for entry in page.json()["files"]}


def pip_gets(site: PackyardProcess, target: Path, requirement: str) -> dict[str, str]:
    result = pip_install(site.index_url, target, requirement)
    assert result.returncode == 0, result.stdout + result.stderr
    return installed(target)


def test_a_yank_is_served_at_once_and_pip_skips_it_unless_pinned(
    sites: Sites, tmp_path: Path
) -> None:
    site = sites.site
    assert set(yanked_in_html(site, "acme-core").values()) == {None}  # warm the page

    cli(site, "yank", "acme-core", "1.1", "--reason", "broken build")

    assert yanked_in_html(site, "acme-core") == {
        "acme_core-1.0-py3-none-any.whl": None,
        "acme_core-1.1-py3-none-any.whl": "broken build",
        "acme_core-1.1.tar.gz": "broken build",
    }
    assert yanked_in_json(site, "acme-core") == {
        "acme_core-1.0-py3-none-any.whl": False,
        "acme_core-1.1-py3-none-any.whl": "broken build",
        "acme_core-1.1.tar.gz": "broken build",
    }
    assert pip_gets(site, tmp_path / "unpinned", "acme-core") == {"acme-core": "1.0"}
    assert pip_gets(site, tmp_path / "pinned", "acme-core==1.1") == {"acme-core": "1.1"}

    cli(site, "unyank", "acme-core", "1.1")

    assert set(yanked_in_html(site, "acme-core").values()) == {None}
    assert pip_gets(site, tmp_path / "after", "acme-core") == {"acme-core": "1.1"}


def test_an_upstream_release_is_yanked_on_this_site_only(sites: Sites, tmp_path: Path) -> None:
    site, upstream = sites.site, sites.upstream
    assert set(yanked_in_html(site, "public-lib").values()) == {None}  # warm, and cached

    output = cli(site, "yank", "public-lib", "2.0", "--reason", "R")

    assert "upstream project" in output
    assert yanked_in_html(site, "public-lib") == {
        "public_lib-1.0-py3-none-any.whl": None,
        "public_lib-2.0-py3-none-any.whl": "R",
        "public_lib-2.0.tar.gz": "R",
    }
    assert yanked_in_json(site, "public-lib")["public_lib-2.0.tar.gz"] == "R"
    assert set(yanked_in_html(upstream, "public-lib").values()) == {None}
    assert pip_gets(site, tmp_path / "unpinned", "public-lib") == {"public-lib": "1.0"}

    cli(site, "unyank", "public-lib", "2.0")

    assert set(yanked_in_html(site, "public-lib").values()) == {None}


def test_a_deleted_file_is_gone_and_its_filename_can_never_come_back(sites: Sites) -> None:
    site, wheel = sites.site, "acme_old-1.0-py3-none-any.whl"
    file_url = f"{site.url}/files/acme-old/{wheel}"
    assert httpx.get(file_url).status_code == 200
    declined = subprocess.run(
        [PYTHON, "-m", "packyard", "delete", "acme-old", "1.0", "--data-dir", str(site.data_dir)],
        input="n\n",
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=120,
        check=False,
    )
    assert declined.returncode != 0
    assert httpx.get(file_url).status_code == 200

    assert wheel in cli(site, "delete", "acme-old", "1.0", "--yes")

    # Its only release gone, the project hides no upstream one (there is none here).
    assert httpx.get(f"{site.index_url}acme-old/").status_code == 404
    assert httpx.get(file_url).status_code == 404
    again = sites.local_dir.parent / "again"
    again.mkdir()
    (again / wheel).write_bytes((sites.local_dir / wheel).read_bytes())
    result = site.import_dir(again)
    assert result.returncode == 1
    assert "previously used by a file that has since been deleted" in result.stderr
    assert httpx.get(file_url).status_code == 404


def test_the_name_allow_list_from_the_command_line(sites: Sites) -> None:
    site = sites.site
    assert cli(site, "name", "allow", "Requests", "--reason", "in-house fork") == (
        "allowed requests\n"
    )
    listed = cli(site, "name", "list").splitlines()
    assert [line.split("\t")[::3] for line in listed] == [["requests", "in-house fork"]]
    cli(site, "name", "disallow", "requests")
    assert cli(site, "name", "list") == ""
    refused = packyard("name", "disallow", "requests", "--data-dir", str(site.data_dir))
    assert refused.returncode == 1
    assert "not on the allow-list" in refused.stderr
