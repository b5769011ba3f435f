"""pypi-simple, strict about PEP 691 and 503, reads the same files both ways."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, DistributionPackage, PyPISimple

from tests.e2e.conftest import TwoSites

pytestmark = pytest.mark.e2e

PROJECTS = ["acme-tools", "acme-core", "public-lib"]


def summary(package: DistributionPackage) -> tuple[object, ...]:
    return (
        package.filename,
        package.url,
        package.digests.get("sha256"),
        package.requires_python,
        package.has_metadata,
        package.is_yanked,
    )


@pytest.fixture
def clients(two_sites: TwoSites) -> Iterator[tuple[PyPISimple, PyPISimple]]:
    with (
        PyPISimple(endpoint=two_sites.site.index_url, accept=ACCEPT_JSON_ONLY) as json_client,
        PyPISimple(endpoint=two_sites.site.index_url, accept=ACCEPT_HTML_ONLY) as html_client,
    ):
        yield json_client, html_client


@pytest.mark.parametrize("project", PROJECTS)
def test_json_and_html_pages_list_the_same_files(
    clients: tuple[PyPISimple, PyPISimple], project: str
) -> None:
    json_client, html_client = clients
    json_page = json_client.get_project_page(project)
    html_page = html_client.get_project_page(project)
    assert json_page.packages
    assert sorted(map(summary, json_page.packages)) == sorted(map(summary, html_page.packages))
    assert all(package.digests.get("sha256") for package in json_page.packages)


def test_the_project_list_is_the_same_both_ways(clients: tuple[PyPISimple, PyPISimple]) -> None:
    json_client, html_client = clients
    json_names = {p for p in json_client.get_index_page().projects}
    html_names = {p for p in html_client.get_index_page().projects}
    assert json_names == html_names
    assert {"acme-tools", "acme-core"} <= {n.lower() for n in json_names}


@pytest.mark.parametrize("project", PROJECTS)
def test_metadata_and_files_verify_against_their_hashes(
    clients: tuple[PyPISimple, PyPISimple], project: str, tmp_path: Path
) -> None:
    json_client, _ = clients
    for package in json_client.get_project_page(project).packages:
        target = tmp_path / package.filename
        json_client.download_package(package, target, verify=True)
        if package.filename.endswith(".whl"):
            assert package.has_metadata
            metadata = json_client.get_package_metadata_bytes(package, verify=True)
            assert metadata == wheel_metadata(target)


def wheel_metadata(wheel: Path) -> bytes:
    """The exact bytes of the wheel's own `*.dist-info/METADATA`."""
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(member)
