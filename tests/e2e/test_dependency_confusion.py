"""In-house names always win: pip and uv never see an upstream release of one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.conftest import TwoSites

pytestmark = pytest.mark.e2e

WANTED = {"acme-tools": "1.0", "acme-core": "1.0", "public-lib": "2.0"}


def test_pip_installs_the_in_house_release_and_public_dependencies(
    two_sites: TwoSites, tmp_path: Path
) -> None:
    result = pip_install(two_sites.site.index_url, tmp_path, "acme-tools")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == WANTED


def test_uv_installs_the_in_house_release_and_public_dependencies(
    two_sites: TwoSites, tmp_path: Path
) -> None:
    result = uv_install(two_sites.site.index_url, tmp_path, "acme-tools")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == WANTED


@pytest.mark.parametrize(
    "accept", ["text/html", "application/vnd.pypi.simple.v1+json"], ids=["html", "json"]
)
def test_the_page_of_an_in_house_name_shows_no_upstream_file(
    two_sites: TwoSites, accept: str
) -> None:
    response = httpx.get(two_sites.site.index_url + "acme-tools/", headers={"Accept": accept})
    assert response.status_code == 200
    assert "acme_tools-1.0-py3-none-any.whl" in response.text
    assert "99.0" not in response.text


def test_the_upstream_file_of_an_in_house_name_cannot_be_downloaded(two_sites: TwoSites) -> None:
    url = two_sites.site.url + "/files/acme-tools/acme_tools-99.0-py3-none-any.whl"
    assert httpx.get(url).status_code == 404


def test_pip_refuses_a_pin_to_the_upstream_version(two_sites: TwoSites, tmp_path: Path) -> None:
    result = pip_install(two_sites.site.index_url, tmp_path, "acme-tools==99.0")
    assert result.returncode != 0
    assert "No matching distribution" in result.stderr
