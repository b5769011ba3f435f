"""`read_source`: a directory of YAML and JSON, a zip of JSON, one file; and every
hostile or broken input reported by file name while the rest is read."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from packyard.advisories import sources
from packyard.advisories.sources import (
    MAX_RECORD_BYTES,
    Entry,
    SourceUnreadable,
    count_records,
    read_source,
)
from tests.unit.advisories.conftest import SNAPSHOT, SNAPSHOT_FILES, SNAPSHOT_SKIPPED, raw


def record(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"GHSA-test-{number:04d}",
        "modified": "2024-05-01T10:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "lib"}, "versions": ["1.0"]}],
        **fields,
    }


def problems(entries: list[Entry]) -> dict[str, str]:
    return {entry.origin: entry.problem for entry in entries if entry.problem is not None}


def ids(entries: list[Entry]) -> list[str]:
    return [entry.record.id for entry in entries if entry.record is not None]


@pytest.fixture(scope="module")
def snapshot_entries() -> list[Entry]:
    return list(read_source(SNAPSHOT))


def test_the_whole_snapshot_reads_but_for_the_two_unevaluable_records(
    snapshot_entries: list[Entry],
) -> None:
    assert len(snapshot_entries) == SNAPSHOT_FILES == count_records(SNAPSHOT)
    assert set(problems(snapshot_entries)) == SNAPSHOT_SKIPPED
    origins = [entry.origin for entry in snapshot_entries]
    # A stable order, folder by folder: reports diff well.
    assert origins == sorted(origins, key=lambda origin: Path(origin).parts)
    assert origins[0] == "accesscontrol/PYSEC-2021-335.yaml"


def test_every_listed_version_of_the_snapshot_is_affected(snapshot_entries: list[Entry]) -> None:
    """The union of `versions` and ranges, over all 2,659 records read."""
    checked = 0
    for entry in snapshot_entries:
        if entry.record is None:
            continue
        name = next(iter(entry.record.affected))  # one project per snapshot record
        for affected in cast(list[dict[str, list[str]]], entry.record.data["affected"]):
            for version in affected.get("versions", []):
                assert entry.record.affects(name, version), (entry.origin, version)
                checked += 1
    assert checked > 50_000


def test_a_directory_of_yaml_and_json_below_any_depth(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "deep" / "one.json").write_text(json.dumps(record(1)))
    (tmp_path / "a" / "two.yaml").write_text(yaml.safe_dump(record(2)))
    (tmp_path / "three.yml").write_text(yaml.safe_dump(record(3)))
    (tmp_path / "README.md").write_text("not a record")
    (tmp_path / "broken.json").write_text("{")
    entries = list(read_source(tmp_path))
    assert [e.origin for e in entries] == [
        "a/deep/one.json",
        "a/two.yaml",
        "broken.json",
        "three.yml",
    ]
    assert ids(entries) == ["GHSA-test-0001", "GHSA-test-0002", "GHSA-test-0003"]
    assert problems(entries)["broken.json"].startswith("not valid JSON: ")
    assert count_records(tmp_path) == 4


def test_a_directory_does_not_follow_links_nor_open_pipes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps(record(9)))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "linked-dir").symlink_to(outside, target_is_directory=True)
    (tree / "linked.json").symlink_to(outside / "secret.json")
    os.mkfifo(tree / "pipe.json")  # opening it would wait for a writer forever
    (tree / "real.json").write_text(json.dumps(record(1)))
    assert [e.origin for e in read_source(tree)] == ["real.json"]


def test_an_oversized_file_is_skipped_unread(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text(json.dumps(record(1, details="x" * MAX_RECORD_BYTES)))
    (tmp_path / "ok.json").write_text(json.dumps(record(2)))
    entries = list(read_source(tmp_path))
    assert problems(entries) == {"big.json": f"larger than {MAX_RECORD_BYTES} bytes: skipped"}
    assert ids(entries) == ["GHSA-test-0002"]


def test_a_yaml_alias_bomb_is_skipped(tmp_path: Path) -> None:
    """Nine levels of nine aliases: a 1 KB file that would be 387 million values."""
    lines = [
        "id: PYSEC-2099-1",
        'modified: "2024-01-01T00:00:00Z"',
        "a0: &a0 [x, x, x, x, x, x, x, x, x]",
    ]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "fine.yaml").write_text(yaml.safe_dump(record(1)))
    entries = list(read_source(tmp_path))
    assert problems(entries) == {"bomb.yaml": "more than 100000 values: skipped"}
    assert ids(entries) == ["GHSA-test-0001"]


def test_json_nested_past_the_parser_s_stack_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "fine.json").write_text(json.dumps(record(1)))
    entries = list(read_source(tmp_path))
    assert problems(entries) == {"deep.json": "nested too deeply: skipped"}


@pytest.mark.parametrize("name", ["one.json", "one.yaml"])
def test_a_single_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(json.dumps(record(1)))  # JSON is YAML too
    entries = list(read_source(path))
    assert [(e.origin, e.record.id if e.record else None) for e in entries] == [
        (name, "GHSA-test-0001")
    ]
    assert count_records(path) == 1


def test_a_real_yaml_record_as_a_single_file() -> None:
    (entry,) = read_source(SNAPSHOT / "py" / "PYSEC-2022-42969.yaml")
    assert entry.origin == "PYSEC-2022-42969.yaml"
    assert entry.record is not None
    assert entry.record.data == read_json_like(raw("py/PYSEC-2022-42969.yaml"))


def read_json_like(data: dict[str, object]) -> dict[str, object]:
    return cast(dict[str, object], json.loads(json.dumps(data, default=str)))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing", "does not exist"),
        ("records.zip", "is not a readable zip"),
        ("notes.txt", "is not a directory of OSV records, a zip of them, nor a .json/.yaml record"),
    ],
)
def test_an_unreadable_source_is_one_clear_error(tmp_path: Path, path: str, message: str) -> None:
    if path != "missing":
        (tmp_path / path).write_bytes(b"garbage, not a zip")
    with pytest.raises(SourceUnreadable, match=message):
        list(read_source(tmp_path / path))


def write_zip(path: Path, members: dict[str, bytes], level: int = 6) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def patch_member(
    path: Path, name: str, *, flags: int | None = None, size: int | None = None
) -> None:
    """Rewrite what a member's headers (local and central) declare, as a forger would."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, flag_at, size_at, name_at in (
        (b"PK\x03\x04", 6, 22, 30),
        (b"PK\x01\x02", 8, 24, 46),
    ):
        start = data.find(signature)
        while start != -1:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                if flags is not None:
                    struct.pack_into("<H", data, start + flag_at, flags)
                if size is not None:
                    struct.pack_into("<I", data, start + size_at, size)
            start = data.find(signature, start + 1)
    path.write_bytes(bytes(data))


def test_a_zip_of_json_records(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "all.zip",
        {
            "GHSA-test-0001.json": json.dumps(record(1)).encode(),
            "PyPI/GHSA-test-0002.json": json.dumps(record(2)).encode(),
            "LICENSE": b"not a record",
            "folder/": b"",
        },
    )
    entries = list(read_source(archive))
    assert [(e.origin, e.record.id if e.record else e.problem) for e in entries] == [
        ("GHSA-test-0001.json", "GHSA-test-0001"),
        ("PyPI/GHSA-test-0002.json", "GHSA-test-0002"),
    ]
    assert count_records(archive) == 2


def test_a_zip_s_hostile_members_are_skipped_and_the_rest_read(tmp_path: Path) -> None:
    padding = " " * (MAX_RECORD_BYTES - 1000)  # JSON whitespace: inflates ~1000 times
    incompressible = os.urandom(MAX_RECORD_BYTES // 2).hex()  # 1 MiB of text, barely deflated
    archive = write_zip(
        tmp_path / "hostile.zip",
        {
            "../escape.json": json.dumps(record(1)).encode(),
            "/etc/absolute.json": json.dumps(record(2)).encode(),
            "a/../../up.json": json.dumps(record(3)).encode(),
            "..\\windows.json": json.dumps(record(4)).encode(),
            "bomb.json": (json.dumps(record(5)) + padding).encode(),
            "large.json": json.dumps(record(6, details=incompressible + "xx")).encode(),
            "lying.json": json.dumps(record(7, details=" " * 5_000_000)).encode(),
            "encrypted.json": json.dumps(record(8)).encode(),
            "name\nwith\x1b[31mescapes.json": json.dumps(record(9)).encode(),
            "not-json.json": b"{'python': 'repr'}",
            "fine.json": json.dumps(record(10)).encode(),
        },
    )
    patch_member(archive, "lying.json", size=2000)  # declares 2 KB, holds 5 MB
    patch_member(archive, "encrypted.json", flags=0x1)
    entries = list(read_source(archive))
    found = problems(entries)
    outside = "a path outside the archive: skipped"
    assert found["../escape.json"] == outside
    assert found["/etc/absolute.json"] == outside
    assert found["a/../../up.json"] == outside
    assert found["..\\windows.json"] == outside
    assert found["bomb.json"] == "inflates more than 100 times: skipped as a zip bomb"
    assert found["large.json"] == f"larger than {MAX_RECORD_BYTES} bytes: skipped"
    assert found["lying.json"].startswith("cannot be inflated: ")
    assert found["encrypted.json"] == "encrypted: skipped"
    assert found["not-json.json"].startswith("not valid JSON: ")
    # Read, under a name that cannot break a report's line or colour a terminal.
    assert "name\\nwith\\x1b[31mescapes.json" in [e.origin for e in entries]
    assert ids(entries) == ["GHSA-test-0009", "GHSA-test-0010"]


def test_a_zip_that_inflates_past_the_total_limit_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_zip(
        tmp_path / "all.zip", {f"r{n}.json": json.dumps(record(n)).encode() for n in range(10)}
    )
    monkeypatch.setattr(sources, "MAX_TOTAL_BYTES", 5 * len(json.dumps(record(1))))
    with pytest.raises(SourceUnreadable, match="refused as a zip bomb"):
        list(read_source(archive))


def test_a_damaged_zip(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "all.zip", {f"r{n}.json": json.dumps(record(n)).encode() for n in range(3)}
    )
    whole = archive.read_bytes()
    # A member's bytes flipped: that member is reported, the others read.
    flipped = bytearray(whole)
    start = whole.find(b"PK\x03\x04", 1)  # the second member's local header
    flipped[start + 40] ^= 0xFF
    archive.write_bytes(bytes(flipped))
    entries = list(read_source(archive))
    assert list(problems(entries)) == ["r1.json"]
    assert ids(entries) == ["GHSA-test-0000", "GHSA-test-0002"]
    # Cut short (a download that stopped): the zip as a whole is unreadable.
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceUnreadable, match="is not a readable zip"):
        list(read_source(archive))
    assert count_records(archive) == 1
