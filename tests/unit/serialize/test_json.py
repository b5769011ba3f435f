"""The PEP 691 JSON writer, and its agreement with the HTML writer as pypi-simple reads both."""

import json as stdjson
from typing import Any

import pytest
from pypi_simple import IndexPage, ProjectPage

from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus
from packyard.serialize import file_version, html, json
from tests.unit.serialize.conftest import HOSTILE, SHA_METADATA, SHA_WHEEL, sample_project

PAGE_URL = "https://index.test/simple/demo-pkg/"

SITE = "https://index.test/"
SERVED_PROVENANCE = (
    "https://index.test/integrity/demo-pkg/1.1/demo_pkg-1.1-py3-none-any.whl/provenance"
)


def _load(page: bytes) -> Any:
    return stdjson.loads(page)


def test_project_page_shape(project: ProjectDetail) -> None:
    data = _load(json.render_project_detail(project, SITE))
    assert data["meta"] == {"api-version": "1.4"}
    assert data["name"] == "demo-pkg"
    assert [f["filename"] for f in data["files"]] == [f.filename for f in project.files]
    assert "project-status" not in data


def test_versions_hold_every_file_version(project: ProjectDetail) -> None:
    data = _load(json.render_project_detail(project, SITE))
    assert data["versions"] == ["0.9", "1.0", "1.1", "3.0.0+local"]
    for dist in project.files:
        version = file_version(dist.filename)
        assert version is None or version in data["versions"]


def test_versions_keep_unparseable_given_strings_last() -> None:
    project = ProjectDetail("p", (DistFile("p-2.0.tar.gz"),), versions=("dev-build", "10.0"))
    assert _load(json.render_project_detail(project, SITE))["versions"] == [
        "2.0",
        "10.0",
        "dev-build",
    ]


def test_file_keys(project: ProjectDetail) -> None:
    sdist, wheel, hostile, local = _load(json.render_project_detail(project, SITE))["files"]
    assert sdist == {
        "filename": "demo_pkg-1.0.tar.gz",
        "url": "../../files/demo-pkg/demo_pkg-1.0.tar.gz",
        "hashes": {"sha256": "a" * 64, "md5": "d" * 32},
        "requires-python": ">=3.9,<4",
        "yanked": False,
        "size": 1234,
        "upload-time": "2025-03-04T05:06:07.000891Z",
    }
    assert wheel["core-metadata"] == {"sha256": SHA_METADATA}
    assert wheel["yanked"] == "broken <b>build</b> & more"
    assert wheel["gpg-sig"] is False
    assert wheel["provenance"] == SERVED_PROVENANCE
    # An empty yank reason is `true`, never "" (SRA: a non-empty reason).
    assert hostile["yanked"] is True
    assert hostile["core-metadata"] is True
    assert hostile["requires-python"] == f">=3{HOSTILE}"  # no HTML escaping in JSON
    assert local["hashes"] == {}
    assert "core-metadata" not in local


def test_never_emits_dist_info_metadata(project: ProjectDetail) -> None:
    # PEP 714: pip 22.3+ failed on the old key in JSON.
    assert b"dist-info-metadata" not in json.render_project_detail(project, SITE)


def test_unknown_size_is_left_out() -> None:
    page = json.render_project_detail(ProjectDetail("p", (DistFile("p-1.tar.gz"),)))
    assert "size" not in _load(page)["files"][0]
    parsed = ProjectPage.from_json_data(_load(page))
    assert parsed.packages[0].size is None


@pytest.mark.parametrize("status", [ProjectStatus("archived"), ProjectStatus("deprecated", "x")])
def test_project_status(status: ProjectStatus) -> None:
    data = _load(json.render_project_detail(ProjectDetail("p", (), status=status), SITE))
    assert data["project-status"] == {"status": status.status, "reason": status.reason}


def test_private_keys_get_an_underscore() -> None:
    project = ProjectDetail("p", (), private={"hidden": [{"filename": "x", "reason": "cool-down"}]})
    assert _load(json.render_project_detail(project, SITE))["_hidden"] == [
        {"filename": "x", "reason": "cool-down"}
    ]


def test_output_is_compact_ascii(project: ProjectDetail) -> None:
    page = json.render_project_detail(project, SITE)
    page.decode("ascii")
    assert b", " not in page.replace(b"<b>build</b> & more", b"")
    assert b'": ' not in page


def test_project_list() -> None:
    page = json.render_project_list(ProjectList((ProjectEntry("Foo_Bar"), ProjectEntry("baz"))))
    assert _load(page) == {
        "meta": {"api-version": "1.4"},
        "projects": [{"name": "Foo_Bar"}, {"name": "baz"}],
    }
    assert IndexPage.from_json_data(_load(page)).projects == ["Foo_Bar", "baz"]


@pytest.mark.parametrize(
    "status",
    [ProjectStatus(), ProjectStatus("archived", "moved to <new>"), ProjectStatus("deprecated")],
)
def test_html_and_json_say_the_same(status: ProjectStatus) -> None:
    """STANDARDS §6: fetch in both modes and assert the same files, hashes, yanks, metadata."""
    project = sample_project(status)
    from_json = ProjectPage.from_json_data(
        _load(json.render_project_detail(project, SITE)), PAGE_URL
    )
    from_html = ProjectPage.from_html(
        "demo-pkg", html.render_project_detail(project, SITE), PAGE_URL
    )
    assert from_json.repository_version == from_html.repository_version == "1.4"
    assert from_json.status == from_html.status
    assert from_json.status_reason == from_html.status_reason
    assert len(from_json.packages) == len(from_html.packages) == len(project.files)
    for j, h in zip(from_json.packages, from_html.packages, strict=True):
        assert j.filename == h.filename
        assert j.url == h.url
        assert j.requires_python == h.requires_python
        assert j.is_yanked == h.is_yanked
        assert (j.yanked_reason or None) == (h.yanked_reason or None)
        assert j.has_metadata == h.has_metadata
        assert j.metadata_digests == h.metadata_digests
        assert j.provenance_url == h.provenance_url
        assert j.has_sig == h.has_sig
        # HTML carries one hash in the fragment; JSON carries them all.
        assert h.digests.items() <= j.digests.items()
    assert from_json.packages[1].digests == {"sha256": SHA_WHEEL}
    assert from_json.versions is not None
    assert {p.version for p in from_json.packages if p.version} <= set(from_json.versions)


def test_provenance_needs_the_sites_absolute_url() -> None:
    """PEP 740 asks for an absolute URL: without the site's, the key is left out."""
    dist = DistFile("p-1.tar.gz", provenance="files.provenance")
    [entry] = _load(json.render_project_detail(ProjectDetail("p", (dist,))))["files"]
    assert "provenance" not in entry
    [entry] = _load(json.render_project_detail(ProjectDetail("p", (dist,)), SITE))["files"]
    assert entry["provenance"] == "https://index.test/integrity/p/1/p-1.tar.gz/provenance"
