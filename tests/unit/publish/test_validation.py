"""Upload validation: metadata (§2.9), filenames (§2.12, §2.17, §2.18), archives (§2.16)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata, RawMetadata

from packyard.dists.filenames import parse_filename
from packyard.errors import InvalidDistribution, InvalidRequest
from packyard.publish.upload_form import UploadForm
from packyard.publish.validation import (
    is_valid_platform_tag,
    read_archive_metadata,
    validate_file,
    validate_metadata,
)
from tests.builders import build_metadata_bomb_wheel, build_sdist, build_wheel, metadata_text

HINT = r"\. See https://packaging\.python\.org/specifications/core-metadata for more information\.$"


def raw(**fields: object) -> RawMetadata:
    base: dict[str, object] = {"metadata_version": "2.1", "name": "acme-core", "version": "1.0"}
    base.update(fields)
    return base  # type: ignore[return-value]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"])
def test_supported_metadata_versions_pass(version: str) -> None:
    assert validate_metadata(raw(metadata_version=version)).metadata_version == version


@pytest.mark.parametrize("version", ["2.0", "2.6", "3.0", "banana"])
def test_other_metadata_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^'{version}' is not a valid metadata version{HINT}"):
        validate_metadata(raw(metadata_version=version))


def test_the_metadata_version_error_wins_over_name_and_version() -> None:
    with pytest.raises(InvalidRequest, match=r"^'3.0' is not a valid metadata version"):
        validate_metadata(raw(metadata_version="3.0", name="-bad-", version="not a version"))


def test_the_name_error_wins_over_the_version_error() -> None:
    with pytest.raises(InvalidRequest, match=r"^'-bad-' is invalid for 'name'"):
        validate_metadata(raw(name="-bad-", version="not a version", summary="x" * 600))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": "1.0+local"}, "^The use of local versions in '1.0\\+local' is not allowed"),
        ({"summary": "x" * 513}, "^'summary' field must be 512 characters or less"),
        ({"author_email": "not an address"}, "is not a valid email address"),
        ({"classifiers": ["Nonsense :: Classifier"]}, "is not a valid classifier"),
        (
            {"classifiers": ["Natural Language :: Ukranian"]},
            "^The classifier 'Natural Language :: Ukranian' has been deprecated",
        ),
        ({"home_page": "javascript:alert(1)"}, "is not a valid url"),
        ({"project_urls": {"x" * 33: "https://example.org"}}, "must be 32 characters or less"),
        ({"requires_dist": ["attrs @ https://example.org/attrs.whl"]}, "^Can't have direct"),
        (
            {"metadata_version": "2.4", "license": "MIT", "license_expression": "MIT"},
            "^License is deprecated when License-Expression is present",
        ),
        ({"description_content_type": "text/html"}, "must be one of"),
        ({"metadata_version": "2.2", "dynamic": ["name"]}, "is not allowed as a dynamic"),
        ({"license_expression": "MIT"}, "introduced in metadata version 2.4, not 2.1"),
    ],
)
def test_warehouse_metadata_rules(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_metadata(raw(**fields))


def test_good_metadata_passes() -> None:
    metadata = validate_metadata(
        raw(
            metadata_version="2.4",
            summary="Core",
            author_email="Dev <dev@example.org>",
            classifiers=["Programming Language :: Python :: 3"],
            project_urls={"Source": "https://example.org/src"},
            requires_dist=["attrs>=23"],
            license_expression="MIT",
        )
    )

    assert str(metadata.version) == "1.0"


def upload_form(filetype: str = "bdist_wheel", pyversion: str = "py3") -> UploadForm:
    return UploadForm(raw=raw(), filetype=filetype, pyversion=pyversion, digests={})


METADATA = Metadata.from_raw(raw(name="Acme.Core", version="1.0"))


@pytest.mark.parametrize(
    ("filename", "form", "message"),
    [
        ("acme_core-1.0.tar.gz", upload_form("bdist_egg"), "^filetype: Use a known file type"),
        ("acme_core-1.0-py3-none-any.whl", upload_form(pyversion=""), "^pyversion: Python"),
        ("acme_core-1.0.tar.gz", upload_form("sdist", "py3"), "^pyversion: Use 'source'"),
        (
            "../acme_core-1.0.tar.gz",
            upload_form("sdist", "source"),
            "^Cannot upload a file with '/'",
        ),
        ("acme\\core-1.0.tar.gz", upload_form("sdist", "source"), "^Cannot upload a file with '/'"),
        ("acme_core-1.0\n.whl", upload_form(), "^Cannot upload a file with control characters"),
        ("acme_core-1.0.tar.gz", upload_form(), "^Invalid file extension: a bdist_wheel must"),
        ("acme_core-1.0.exe", upload_form("sdist", "source"), "^Invalid file extension"),
        (
            "Acme.Core-1.0.tar.gz",
            upload_form("sdist", "source"),
            r"^Filename 'Acme.Core-1.0.tar.gz' is invalid, should be 'acme_core-1.0.tar.gz'\.$",
        ),
        ("acme_core-1.0.zip", upload_form("sdist", "source"), "should be 'acme_core-1.0.tar.gz'"),
        ("acme_core-1.0.0.tar.gz", upload_form("sdist", "source"), "should be 'acme_core-1.0.tar"),
        ("other-1.0-py3-none-any.whl", upload_form(), "^Start filename for 'Acme.Core' with"),
        ("acme_core-2.0-py3-none-any.whl", upload_form(), "^Version in filename should be '1.0'"),
        (
            "acme_core-1.0-cp312-cp312-linux_x86_64.whl",
            upload_form(),
            "^Binary wheel 'acme_core-1.0-cp312-cp312-linux_x86_64.whl' has an unsupported "
            "platform tag 'linux_x86_64'",
        ),
    ],
)
def test_filename_rules(filename: str, form: UploadForm, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_file(filename, form, METADATA)


def test_an_unparsable_wheel_name_is_an_invalid_distribution() -> None:
    with pytest.raises(InvalidDistribution, match="Invalid wheel filename"):
        validate_file("acme_core-1.0-py3.whl", upload_form(), METADATA)


@pytest.mark.parametrize(
    ("filename", "form"),
    [
        ("acme_core-1.0.tar.gz", upload_form("sdist", "source")),
        ("acme_core-1.0-py3-none-any.whl", upload_form()),
        ("Acme.Core-1.0-py3-none-any.whl", upload_form()),  # older tools' spelling
        ("acme_core-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", upload_form()),
    ],
)
def test_good_filenames_pass(filename: str, form: UploadForm) -> None:
    assert validate_file(filename, form, METADATA).filename == filename


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("any", True),
        ("win_amd64", True),
        ("win32", True),
        ("manylinux1_x86_64", True),
        ("manylinux2014_aarch64", True),
        ("manylinux_2_28_x86_64", True),
        ("musllinux_1_2_aarch64", True),
        ("macosx_10_9_x86_64", True),
        ("macosx_11_0_arm64", True),
        ("macosx_14_0_universal2", True),
        ("macosx_11_3_arm64", False),
        ("macosx_16_0_arm64", False),
        ("ios_13_0_arm64_iphoneos", True),
        ("android_21_arm64_v8a", True),
        ("pyemscripten_2024_0_wasm32", True),
        ("linux_x86_64", False),
        ("manylinux_2_17_sparc", False),
        ("freebsd_14_0_amd64", False),
    ],
)
def test_platform_tag_allow_list(tag: str, valid: bool) -> None:
    assert is_valid_platform_tag(tag) is valid


def test_a_good_wheel_and_sdist_give_their_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "acme-core", "1.0", summary="Core")
    sdist = build_sdist(tmp_path, "acme-core", "1.0")

    assert read_archive_metadata(wheel, parse_filename(wheel.name)).summary == "Core"
    assert read_archive_metadata(sdist, parse_filename(sdist.name)).name == "acme-core"


def test_archive_problems_are_invalid_distributions(tmp_path: Path) -> None:
    corrupt = tmp_path / "acme_core-1.0-py3-none-any.whl"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "bomb").mkdir()
    bomb = build_metadata_bomb_wheel(tmp_path / "bomb", "acme-core", "1.0", size=20 * 1024 * 1024)
    (tmp_path / "other").mkdir()
    lying = build_wheel(
        tmp_path / "other", "acme-core", "1.0", metadata=metadata_text("acme-tools", "1.0")
    )
    cases = [
        (corrupt, "cannot be read"),
        # Its 20 MiB of METADATA compress to a few kB: caught as a bomb before it is read.
        (bomb, "a zip or tar bomb"),
        (lying, "The metadata name 'acme-tools' does not match the filename"),
    ]
    for path, message in cases:
        with pytest.raises(InvalidDistribution, match=f"^Invalid distribution file.*({message})"):
            read_archive_metadata(path, parse_filename(path.name))


def test_a_wheel_without_record_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "acme-core", "1.0")
    stripped = tmp_path / "stripped" / wheel.name
    stripped.parent.mkdir()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w") as target:
        for info in source.infolist():
            if not info.filename.endswith("/RECORD"):
                target.writestr(info, source.read(info))

    with pytest.raises(InvalidDistribution, match=r"no \.dist-info/RECORD file"):
        read_archive_metadata(stripped, parse_filename(stripped.name))
