"""Truncated and hostile wheels from a real upstream (the caching proxy issue: the
upstream "sends a truncated or hostile zip (a central directory that points
outside the file, a huge declared METADATA size): packyard answers with a clear
502/503 or falls back to a full download, never a 500, never a cached partial file").

The upstream is `counting_upstream.py`, which honours Range, so packyard reads
each wheel's METADATA with range requests (`dists/remote_zip.py`). Every
hostile wheel is a real wheel from `build_wheel` with a few bytes changed, and
the upstream's page gives the sha256 of the changed bytes: the transfer is
sound, only the zip inside is not.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.servers import PackyardProcess, ServerProcess
from tests.e2e.test_upstream_metadata import counting_upstream, json_page, metadata_url

pytestmark = pytest.mark.e2e

# PKWARE APPNOTE.TXT 6.3.10: the end of central directory record (4.3.16) and a
# central directory file header (4.3.12), with the offsets of the fields changed.
EOCD_SIZE = 22
EOCD_SIGNATURE = b"PK\x05\x06"
EOCD_DIRECTORY_OFFSET = 16
CENTRAL_SIGNATURE = b"PK\x01\x02"
CENTRAL_HEADER_SIZE = 46
CENTRAL_UNCOMPRESSED_SIZE = 24
LOCAL_UNCOMPRESSED_SIZE = 22  # in the local file header (4.3.7)
TWO_GIB = 2 * 1024**3


def cut_short(wheel: bytes) -> bytes:
    """The last 100 bytes cut off: the end record and part of the directory are gone."""
    return wheel[:-100]


def directory_outside(wheel: bytes) -> bytes:
    """The end record's offset of the central directory points past the end of the file."""
    eocd = len(wheel) - EOCD_SIZE  # `zipfile` writes no archive comment
    assert wheel[eocd : eocd + 4] == EOCD_SIGNATURE
    field = eocd + EOCD_DIRECTORY_OFFSET
    return wheel[:field] + struct.pack("<I", len(wheel) + 4096) + wheel[field + 4 :]


def huge_metadata(wheel: bytes) -> bytes:
    """METADATA declares 2 GiB uncompressed, in its local header and its directory entry."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        (info,) = [i for i in archive.infolist() if i.filename.endswith(".dist-info/METADATA")]
    central = wheel.rindex(info.filename.encode()) - CENTRAL_HEADER_SIZE
    assert wheel[central : central + 4] == CENTRAL_SIGNATURE
    huge = struct.pack("<I", TWO_GIB)
    patched = bytearray(wheel)
    for at in (info.header_offset + LOCAL_UNCOMPRESSED_SIZE, central + CENTRAL_UNCOMPRESSED_SIZE):
        patched[at : at + 4] = huge
    return bytes(patched)


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "hostile-cut-short": cut_short,
    "hostile-directory-outside": directory_outside,
    "hostile-huge-metadata": huge_metadata,
}
# What packyard's 502 says is wrong with each (`dists/remote_zip.py`).
REASONS = {
    "hostile-cut-short": "no end of central directory record",
    "hostile-directory-outside": "central directory does not end at its end record",
    "hostile-huge-metadata": "METADATA is larger than the 10 MiB limit",
}
GOOD = "hostile-neighbour"  # a sound wheel on the same upstream


@dataclass(frozen=True)
class HostileSite:
    upstream: ServerProcess
    site: PackyardProcess
    wheels: dict[str, Path]

    def kept_metadata(self, project: str) -> list[Path]:
        """The METADATA blobs packyard keeps for the project's wheel."""
        name = self.wheels[project].name + ".metadata"
        return list((self.site.data_dir / "files").rglob(name))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSite]:
    root = tmp_path_factory.mktemp("hostile-wheels")
    dists = root / "dists"
    dists.mkdir()
    wheels = {GOOD: build_wheel(dists, GOOD, "1.0")}
    for project, damage in DAMAGES.items():
        wheel = build_wheel(dists, project, "1.0")
        wheel.write_bytes(damage(wheel.read_bytes()))
        wheels[project] = wheel
    upstream = counting_upstream(root / "tree", list(wheels.values()))
    with upstream, PackyardProcess(root / "data", upstreams=[upstream.url + "/simple/"]) as site:
        yield HostileSite(upstream, site, wheels)


def test_each_wheel_is_damaged_as_its_case_says(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "sample", "1.0").read_bytes()
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(cut_short(wheel)))
    outside = directory_outside(wheel)
    field = len(outside) - EOCD_SIZE + EOCD_DIRECTORY_OFFSET
    assert len(outside) == len(wheel)
    assert struct.unpack_from("<I", outside, field)[0] > len(outside)
    with zipfile.ZipFile(io.BytesIO(huge_metadata(wheel))) as archive:
        sizes = {i.filename.rpartition("/")[2]: i.file_size for i in archive.infolist()}
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        sound = {i.filename.rpartition("/")[2]: i.file_size for i in archive.infolist()}
    assert sizes == {**sound, "METADATA": TWO_GIB}


@pytest.mark.parametrize("project", DAMAGES)
def test_the_metadata_of_a_hostile_wheel_is_a_502_naming_the_upstream_and_never_kept(
    hostile: HostileSite, project: str
) -> None:
    files = json_page(hostile.site, project)["files"]
    assert isinstance(files, list)
    assert files[0]["core-metadata"]  # advertised, as for every upstream wheel

    url = metadata_url(hostile.site, project, hostile.wheels[project])
    for _ in range(2):  # the second time too: nothing was kept the first time
        response = httpx.get(url, timeout=30)
        assert response.status_code == 502, response.text
        assert response.text.startswith(f"Upstream {hostile.upstream.url}/simple/: ")
        assert REASONS[project] in response.text

    assert hostile.kept_metadata(project) == []
    assert json_page(hostile.site, project)["files"] == files


@pytest.mark.parametrize("project", DAMAGES)
def test_pip_install_of_a_hostile_wheel_fails_cleanly(
    hostile: HostileSite, project: str, tmp_path: Path
) -> None:
    # No retries: pip would otherwise ask for the 502 five more times, with back-off.
    result = pip_install(hostile.site.index_url, tmp_path, "--retries", "0", project)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "502" in output
    assert "Traceback" not in output
    assert installed(tmp_path) == {}


def test_the_site_stays_healthy_and_a_good_wheel_of_the_same_upstream_installs(
    hostile: HostileSite, tmp_path: Path
) -> None:
    for project in DAMAGES:  # whatever ran before: every hostile wheel has been tried
        httpx.get(metadata_url(hostile.site, project, hostile.wheels[project]), timeout=30)

    assert httpx.get(hostile.site.url + "/healthz").status_code == 200
    pip = pip_install(hostile.site.index_url, tmp_path / "pip", GOOD)
    uv = uv_install(hostile.site.index_url, tmp_path / "uv", GOOD)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert installed(tmp_path / "pip") == installed(tmp_path / "uv") == {GOOD: "1.0"}
    # The good wheel's METADATA is kept: the hostile ones' absence above is no accident.
    assert len(hostile.kept_metadata(GOOD)) == 1
