"""Reading METADATA and PKG-INFO out of wheels and sdists, safely."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from packyard.dists.filenames import parse_filename
from packyard.dists.metadata import (
    CoreMetadata,
    parse_core_metadata,
    read_core_metadata,
    required_projects,
)
from packyard.errors import InvalidDistribution
from tests.builders import build_metadata_bomb_wheel, build_sdist, build_wheel, metadata_text


def read(path: Path) -> CoreMetadata:
    return read_core_metadata(path, parse_filename(path.name))


def wheel_metadata_bytes(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_wheel_metadata_is_read_byte_for_byte(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "Acme.Core",
        "1.0",
        requires_python=">=3.9",
        requires_dist=("attrs>=23",),
        summary="Core things",
        description="# Acme\n\nUnicode: é ✓\n",
    )
    metadata = read(wheel)
    assert metadata.content == wheel_metadata_bytes(wheel)
    assert (metadata.name, metadata.version) == ("Acme.Core", Version("1.0"))
    assert (metadata.requires_python, metadata.summary) == (">=3.9", "Core things")


@pytest.mark.parametrize("zip_format", [False, True])
def test_sdist_pkg_info_is_read(tmp_path: Path, zip_format: bool) -> None:
    sdist = build_sdist(
        tmp_path, "acme-core", "2.0", requires_python=">=3.10", zip_format=zip_format
    )
    metadata = read(sdist)
    assert metadata.content.startswith(b"Metadata-Version: 2.1\nName: acme-core\n")
    assert (metadata.version, metadata.requires_python) == (Version("2.0"), ">=3.10")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (metadata_text("other-name", "1.0"), "name 'other-name' does not match"),
        (metadata_text("acme", "1.1"), "version '1.1' does not match"),
        (metadata_text("acme", "not a version"), "is not valid"),
        ("Metadata-Version: 2.1\nVersion: 1.0\n", "no valid Name"),
        (metadata_text("acme", "1.0", requires_python=">=3.x"), "Requires-Python"),
    ],
)
def test_metadata_must_agree_with_the_filename(tmp_path: Path, text: str, message: str) -> None:
    wheel = build_wheel(tmp_path, "acme", "1.0", metadata=text)
    with pytest.raises(InvalidDistribution, match=message):
        read(wheel)
    sdist = build_sdist(tmp_path, "acme", "1.0", metadata=text)
    with pytest.raises(InvalidDistribution, match=message):
        read(sdist)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme-1.0-py3-none-any.whl"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(InvalidDistribution, match="cannot be read"):
        read(path)


def test_a_truncated_tar_is_refused(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "acme", "1.0")
    sdist.write_bytes(sdist.read_bytes()[:60])
    with pytest.raises(InvalidDistribution, match="cannot be read"):
        read(sdist)


def test_a_corrupt_metadata_member_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "acme", "1.0", summary="x" * 5000)
    data = bytearray(wheel.read_bytes())
    offset = data.index(b"acme-1.0.dist-info/METADATA") + 40
    data[offset : offset + 20] = bytes(20)  # damage the deflate stream
    wheel.write_bytes(bytes(data))
    with pytest.raises(InvalidDistribution):
        read(wheel)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"acme/__init__.py": b""}, "exactly one .dist-info directory, found: none"),
        (
            {"acme-1.0.dist-info/METADATA": b"", "other-1.0.dist-info/METADATA": b""},
            "exactly one .dist-info directory",
        ),
        ({"acme-2.0.dist-info/WHEEL": b"", "acme-2.0.dist-info/METADATA": b""}, "does not match"),
        (
            {"acme-1.0.dist-info/METADATA": metadata_text("acme", "1.0").encode()},
            "no acme-1.0.dist-info/WHEEL",
        ),
        ({"acme-1.0.dist-info/WHEEL": b""}, "no acme-1.0.dist-info/METADATA"),
    ],
)
def test_wheel_layout_is_checked(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    wheel = write_zip(tmp_path / "acme-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidDistribution, match=message):
        read(wheel)


def test_sdist_needs_a_single_top_directory(tmp_path: Path) -> None:
    sdist = write_zip(
        tmp_path / "acme-1.0.zip",
        {"acme-1.0/PKG-INFO": metadata_text("acme", "1.0").encode(), "stray.txt": b""},
    )
    with pytest.raises(InvalidDistribution, match="single top-level directory"):
        read(sdist)


def test_sdist_needs_pkg_info(tmp_path: Path) -> None:
    sdist = write_zip(tmp_path / "acme-1.0.zip", {"acme-1.0/setup.py": b""})
    with pytest.raises(InvalidDistribution, match=r"no acme-1\.0/PKG-INFO"):
        read(sdist)
    tar = tmp_path / "acme-1.0.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        archive.addfile(tarfile.TarInfo("acme-1.0/setup.py"), io.BytesIO(b""))
    with pytest.raises(InvalidDistribution, match="no <top directory>/PKG-INFO"):
        read(tar)


def test_a_zip_bomb_metadata_is_refused_without_inflating_it(tmp_path: Path) -> None:
    """200 MB of zeros deflate to under 1 MB: cheap to build, costly to trust."""
    wheel = build_metadata_bomb_wheel(tmp_path, "acme", "1.0")
    assert wheel.stat().st_size < 1024 * 1024
    with pytest.raises(InvalidDistribution, match="larger than the 10 MiB limit"):
        read(wheel)


def test_an_oversized_pkg_info_in_a_tar_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "acme-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        info = tarfile.TarInfo("acme-1.0/PKG-INFO")
        info.size = 11 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(InvalidDistribution, match="larger than the 10 MiB limit"):
        read(sdist)


def test_a_pkg_info_that_is_a_link_is_not_metadata(tmp_path: Path) -> None:
    sdist = tmp_path / "acme-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        link = tarfile.TarInfo("acme-1.0/PKG-INFO")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(InvalidDistribution, match="PKG-INFO"):
        read(sdist)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_only_the_header_fields_are_parsed_not_the_description(newline: str) -> None:
    lines = ["Metadata-Version: 2.1", "Name: demo", "Version: 1.0", "Summary: The demo", ""]
    body = ["Name: not-the-name", "Version: 9.9", "", "x" * 100_000]
    content = newline.join(lines + body).encode()
    parsed = parse_core_metadata(content, parse_filename("demo-1.0-py3-none-any.whl"))
    assert (parsed.name, parsed.version, parsed.summary) == ("demo", Version("1.0"), "The demo")
    assert parsed.content == content  # served byte for byte, description and all


def test_required_projects_are_the_requirements_outside_extras() -> None:
    metadata = (
        b"Metadata-Version: 2.3\n"
        b"Name: app\n"
        b"Version: 1.0\n"
        b"Requires-Dist: Foo_Bar>=1\n"
        b"Requires-Dist: foo-bar[speed]; python_version >= '3.8'\n"  # the same project
        b'Requires-Dist: pywin32; sys_platform == "win32"\n'  # the client decides
        b'Requires-Dist: pytest; extra == "test"\n'
        b'Requires-Dist: black; python_version > "3" and extra == "dev"\n'
        b"Requires-Dist: !!not a requirement\n"
        b"\n"
        b"Requires-Dist: in-the-description\n"
    )
    assert required_projects(metadata) == ["foo-bar", "pywin32"]


def test_metadata_without_requirements_requires_nothing() -> None:
    assert required_projects(b"Metadata-Version: 2.1\nName: a\nVersion: 1\n") == []
