"""read_wheel_metadata: METADATA from a wheel by byte ranges, against real and hostile zips."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import anyio
import pytest

from packyard.dists.filenames import parse_filename
from packyard.dists.metadata import MAX_METADATA_SIZE
from packyard.dists.remote_zip import TAIL_SIZE, read_wheel_metadata
from packyard.errors import InvalidDistribution
from tests.builders import ZIP_EPOCH, build_metadata_bomb_wheel, build_wheel, metadata_text

pytestmark = pytest.mark.anyio


class Ranges:
    """A wheel in memory, read by ranges; remembers every range asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []

    async def __call__(self, start: int, end: int) -> bytes:
        assert 0 <= start < end <= len(self.data)
        self.reads.append((start, end))
        return self.data[start:end]

    @property
    def bytes_read(self) -> int:
        return sum(end - start for start, end in self.reads)


async def metadata_of(path: Path, data: bytes | None = None) -> tuple[bytes, Ranges]:
    ranges = Ranges(await anyio.Path(path).read_bytes() if data is None else data)
    content = await read_wheel_metadata(ranges, len(ranges.data), parse_filename(path.name))
    return content, ranges


def zip_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


def write_wheel(
    path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip of `members` in this order; big random members are stored, as wheels do."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED if len(data) > 1_000_000 else method
            archive.writestr(info, data)
    return path


def demo_members(count: int = 0, big: int = 0) -> list[tuple[str, bytes]]:
    """A wheel of demo 1.0: `big` random bytes, `count` small modules, then the dist-info."""
    members = [("demo/big.bin", os.urandom(big))] if big else []
    members += [(f"demo/module_{i:05d}_with_a_longish_name.py", b"x = 1\n") for i in range(count)]
    members += [
        ("demo-1.0.dist-info/METADATA", metadata_text("demo", "1.0").encode()),
        ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]
    return members


WHEEL = "demo-1.0-py3-none-any.whl"


def central_entry(data: bytes, name: str) -> int:
    """Where the central directory entry of `name` starts (APPNOTE 4.3.12)."""
    return data.rfind(name.encode()) - 46


def end_record(data: bytes) -> int:
    return data.rfind(b"PK\x05\x06")


def patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    return data[:at] + struct.pack(fmt, value) + data[at + struct.calcsize(fmt) :]


async def test_a_small_wheel_is_read_in_one_range(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "acme-core", "1.0", requires_dist=("attrs>=23",))
    content, ranges = await metadata_of(path)
    assert content == zip_metadata(path)
    assert ranges.reads == [(0, path.stat().st_size)]


async def test_a_big_wheel_costs_at_most_two_reads_well_under_a_megabyte(tmp_path: Path) -> None:
    path = write_wheel(tmp_path / WHEEL, demo_members(count=20, big=20 * 1024 * 1024))
    content, ranges = await metadata_of(path)
    assert content == zip_metadata(path)
    assert len(ranges.reads) <= 2
    assert ranges.bytes_read < TAIL_SIZE + 4096


async def test_only_the_end_of_a_large_central_directory_is_read(tmp_path: Path) -> None:
    path = write_wheel(tmp_path / WHEEL, demo_members(count=5000, big=2 * 1024 * 1024))
    with zipfile.ZipFile(path) as archive:
        directory_size = path.stat().st_size - archive.start_dir
    assert directory_size > 4 * TAIL_SIZE
    content, ranges = await metadata_of(path)
    assert content == zip_metadata(path)
    assert ranges.bytes_read < TAIL_SIZE + 4096


async def test_a_metadata_entry_early_in_the_directory_is_found_by_reading_backwards(
    tmp_path: Path,
) -> None:
    members = demo_members(count=5000, big=2 * 1024 * 1024)
    members.insert(0, members.pop(-3))  # METADATA first
    path = write_wheel(tmp_path / WHEEL, members)
    content, ranges = await metadata_of(path)
    assert content == zip_metadata(path)
    starts = [start for start, _ in ranges.reads]
    assert len(set(ranges.reads)) == len(ranges.reads)  # no range read twice
    assert starts[:3] == sorted(starts[:3], reverse=True)  # each one further back


async def test_entry_signatures_inside_names_do_not_mislead_the_partial_read(
    tmp_path: Path,
) -> None:
    members = demo_members(count=3000, big=2 * 1024 * 1024)
    fake = "demo/PK\x01\x02-decoy-" + "A" * 60 + ".py"
    members[-4:-4] = [(fake, b""), (fake.replace("decoy", "decoy2"), b"")]
    path = write_wheel(tmp_path / WHEEL, members)
    content, _ = await metadata_of(path)
    assert content == zip_metadata(path)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_stored_and_deflated_metadata(tmp_path: Path, method: int) -> None:
    path = write_wheel(tmp_path / WHEEL, demo_members(), method=method)
    content, _ = await metadata_of(path)
    assert content == zip_metadata(path)


async def test_zip64_end_records_and_extra_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lowered limits make zipfile write what a > 4 GiB wheel has: the ZIP64
    # end record and locator (4.3.14-15) and ZIP64 extra fields (4.5.3).
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    path = write_wheel(tmp_path / WHEEL, demo_members(count=3))
    monkeypatch.undo()
    data = path.read_bytes()
    assert b"PK\x06\x06" in data
    assert b"PK\x06\x07" in data
    at = central_entry(data, "demo-1.0.dist-info/METADATA")
    assert struct.unpack_from("<I", data, at + 24)[0] == 0xFFFFFFFF
    content, _ = await metadata_of(path)
    assert content == zip_metadata(path)


async def test_the_dist_info_is_matched_by_normalised_name_and_version(tmp_path: Path) -> None:
    members = [
        ("Demo_Pkg-1.0.0.dist-info/METADATA", metadata_text("Demo.Pkg", "1.0.0").encode()),
        ("other-1.0.dist-info/METADATA", b"Name: other\n"),
    ]
    path = write_wheel(tmp_path / "demo_pkg-1.0-py3-none-any.whl", members)
    content, _ = await metadata_of(path)
    assert content == members[0][1]


async def test_a_wheel_without_its_dist_info_metadata_is_refused(tmp_path: Path) -> None:
    members = [("other-1.0.dist-info/METADATA", b"Name: other\n")]
    path = write_wheel(tmp_path / WHEEL, members)
    with pytest.raises(InvalidDistribution, match=r"no demo-1\.0\.dist-info/METADATA"):
        await metadata_of(path)


async def test_a_metadata_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    path = build_metadata_bomb_wheel(tmp_path, "demo", "1.0", size=12 * 1024 * 1024)
    with pytest.raises(InvalidDistribution, match="larger than the 10 MiB limit"):
        await metadata_of(path)


async def test_a_bomb_that_lies_about_its_size_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    path = build_metadata_bomb_wheel(tmp_path, "demo", "1.0", size=12 * 1024 * 1024)
    data = path.read_bytes()
    at = central_entry(data, "demo-1.0.dist-info/METADATA")
    (extra_length,) = struct.unpack_from("<H", data, at + 30)
    # Drop the ZIP64 extra field's claim: declare 100 bytes, as a liar would.
    data = patched(data, at + 24, "<I", 100)
    if extra_length:
        data = patched(data, at + 30, "<H", 0)
        name_end = at + 46 + len("demo-1.0.dist-info/METADATA")
        data = data[:name_end] + data[name_end + extra_length :]
        eocd = end_record(data)
        size = struct.unpack_from("<I", data, eocd + 12)[0] - extra_length
        data = patched(data, eocd + 12, "<I", size)
    with pytest.raises(InvalidDistribution, match="larger than the 10 MiB limit"):
        await metadata_of(path, data)


async def test_compressed_data_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    data = write_wheel(tmp_path / WHEEL, demo_members()).read_bytes()
    at = central_entry(data, "demo-1.0.dist-info/METADATA")
    ranges = Ranges(patched(data, at + 20, "<I", 2 * MAX_METADATA_SIZE))
    with pytest.raises(InvalidDistribution, match="larger than"):
        await read_wheel_metadata(ranges, len(ranges.data), parse_filename(WHEEL))


def hostile(data: bytes, edit: str) -> bytes:
    """`data` with one field of the zip edited, as a hostile upstream might."""
    eocd = end_record(data)
    entry = central_entry(data, "demo-1.0.dist-info/METADATA")
    edits = {
        "directory past the end": (eocd + 16, "<I", len(data) + 10),
        "directory before its place": (eocd + 16, "<I", 0),
        "directory too large": (eocd + 12, "<I", 65 * 1024 * 1024),
        "wrong entry count": (eocd + 10, "<H", 7),
        "crc": (entry + 16, "<I", 0xDEADBEEF),
        "size": (entry + 24, "<I", 3),
        "local header past the directory": (entry + 42, "<I", eocd),
        "local header elsewhere": (entry + 42, "<I", 0),
        "encrypted": (entry + 8, "<H", 1),
        "bzip2": (entry + 10, "<H", 12),
        "central signature": (entry, "<I", 0x12345678),
    }
    at, fmt, value = edits[edit]
    return patched(data, at, fmt, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("directory past the end", "does not end at its end record|outside"),
        ("directory before its place", "does not end at its end record"),
        ("directory too large", "larger than 64 MiB"),
        ("wrong entry count", "declares 7 entries"),
        ("crc", "CRC-32"),
        ("size", "its entry says 3"),
        ("local header past the directory", "outside the file"),
        ("local header elsewhere", "names another file"),
        ("encrypted", "encrypted"),
        ("bzip2", "neither stored nor deflated"),
        ("central signature", "malformed"),
    ],
)
async def test_hostile_zips_are_refused(tmp_path: Path, edit: str, message: str) -> None:
    data = write_wheel(tmp_path / WHEEL, demo_members(count=3)).read_bytes()
    with pytest.raises(InvalidDistribution, match=message):
        await metadata_of(tmp_path / WHEEL, hostile(data, edit))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", os.urandom(100_000), b"PK\x05\x06" + bytes(18)],
    ids=["empty", "text", "random", "end record alone"],
)
async def test_files_that_are_not_zips_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidDistribution):
        await metadata_of(tmp_path / WHEEL, data)


async def test_a_reader_that_returns_too_few_bytes_is_refused() -> None:
    async def short(start: int, end: int) -> bytes:
        return b"x" * (end - start - 1)

    with pytest.raises(InvalidDistribution, match="returned"):
        await read_wheel_metadata(short, 1000, parse_filename(WHEEL))


async def test_the_zip64_locator_may_not_point_outside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    data = write_wheel(tmp_path / WHEEL, demo_members()).read_bytes()
    monkeypatch.undo()
    locator = data.rfind(b"PK\x06\x07")
    with pytest.raises(InvalidDistribution, match="ZIP64 locator points outside"):
        await metadata_of(tmp_path / WHEEL, patched(data, locator + 8, "<Q", 2**63))
