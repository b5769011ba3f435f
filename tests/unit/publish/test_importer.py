"""`import_directory`: every good file added once, every bad one reported, nothing half-done."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from packyard.db.models import File, Project
from packyard.db.serial import read_serial
from packyard.publish.importer import ImportResult, find_distributions, import_directory
from packyard.storage.base import blob_key
from tests.builders import (
    LocalStore,
    build_metadata_bomb_wheel,
    build_sdist,
    build_wheel,
    make_local_store,
    metadata_text,
)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    return make_local_store(tmp_path / "data", database_url)


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    directory = tmp_path / "dists"
    directory.mkdir()
    return directory


def count(local: LocalStore, table: type[Project] | type[File]) -> int:
    with local.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


async def run(local: LocalStore, directory: Path) -> list[ImportResult]:
    seen: list[ImportResult] = []
    await import_directory(directory, local.sessions, local.store, seen.append)
    return seen


@pytest.mark.anyio
async def test_wheels_and_sdists_are_added_with_their_metadata(
    local: LocalStore, dists: Path
) -> None:
    wheel = build_wheel(dists, "Acme.Core", "1.0", requires_python=">=3.9", summary="Core")
    (dists / "nested").mkdir()
    build_sdist(dists / "nested", "acme-core", "1.0")
    before = datetime.now(UTC)

    report = await import_directory(dists, local.sessions, local.store)

    assert [r.path.name for r in report.added] == [
        "acme_core-1.0-py3-none-any.whl",
        "acme_core-1.0.tar.gz",
    ]
    assert report.ok
    assert not report.skipped
    with local.sessions() as session:
        project = session.scalars(select(Project)).one()
        rows = {row.filename: row for row in session.scalars(select(File))}
    assert (project.name, project.display_name) == ("acme-core", "Acme.Core")
    row = rows[wheel.name]
    data = wheel.read_bytes()
    assert (row.sha256, row.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert row.blake2_256 == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert (row.version, row.packagetype, row.python_version) == ("1.0", "bdist_wheel", "py3")
    assert (row.requires_python, row.summary, row.yanked) == (">=3.9", "Core", False)
    assert before <= row.upload_time <= datetime.now(UTC)
    assert local.store.local_path(row.blob_key).read_bytes() == data
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("acme_core-1.0.dist-info/METADATA")
    assert row.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert row.metadata_blob_key == blob_key(row.metadata_sha256, f"{wheel.name}.metadata")
    assert local.store.local_path(row.metadata_blob_key).read_bytes() == metadata
    sdist_row = rows["acme_core-1.0.tar.gz"]
    assert (sdist_row.python_version, sdist_row.metadata_sha256) == ("source", None)
    assert serial(local) == 2


@pytest.mark.anyio
async def test_importing_twice_adds_nothing_new(local: LocalStore, dists: Path) -> None:
    build_wheel(dists, "acme", "1.0")
    build_sdist(dists, "acme", "1.0")
    await import_directory(dists, local.sessions, local.store)
    blobs = local.blob_files()

    again = await import_directory(dists, local.sessions, local.store)

    assert not again.added
    assert again.ok
    assert [r.line for r in again.skipped] == [
        "acme-1.0-py3-none-any.whl: already present",
        "acme-1.0.tar.gz: already present",
    ]
    assert (count(local, File), serial(local), local.blob_files()) == (2, 2, blobs)


@pytest.mark.anyio
async def test_other_bytes_under_a_stored_filename_are_a_conflict(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    build_wheel(dists, "acme", "1.0", summary="first")
    await import_directory(dists, local.sessions, local.store)
    build_wheel(dists, "acme", "1.0", summary="second")  # same name, other bytes
    blobs = local.blob_files()

    report = await import_directory(dists, local.sessions, local.store)

    (conflict,) = report.conflicts
    assert "a different file is already stored under this name" in conflict.line
    assert not report.ok
    assert (count(local, File), local.blob_files()) == (1, blobs)


@pytest.mark.anyio
async def test_the_same_bytes_under_another_filename_are_a_conflict(
    local: LocalStore, dists: Path
) -> None:
    sdist = build_sdist(dists, "acme", "1.0")
    await import_directory(dists, local.sessions, local.store)
    sdist.rename(dists / "ACME-1.0.tar.gz")

    report = await import_directory(dists, local.sessions, local.store)

    (conflict,) = report.conflicts
    assert conflict.line == "ACME-1.0.tar.gz: the same file is already stored as 'acme-1.0.tar.gz'"


@pytest.mark.anyio
async def test_bad_files_are_reported_one_line_each_and_nothing_is_stored(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    (dists / "broken-1.0-py3-none-any.whl").write_bytes(b"this is not a zip file")
    renamed = build_wheel(tmp_path, "real-name", "1.0")
    renamed.rename(dists / "other_name-1.0-py3-none-any.whl")
    build_wheel(dists, "acme", "1.0", metadata=metadata_text("acme", "2.0"))
    build_sdist(dists, "hostile", "1.0").rename(dists / "host\x01ile-1.0.tar.gz")
    build_metadata_bomb_wheel(dists, "acme", "1.0")  # replaces the mismatched one
    build_sdist(dists, "zeta", "1.0", metadata=metadata_text("zeta", "2.0"))

    report = await import_directory(dists, local.sessions, local.store)

    assert not report.added
    assert not report.ok
    reasons = {result.path.name: result.line for result in report.errors}
    assert len(reasons) == 5
    expected = {
        "acme-1.0-py3-none-any.whl": "a zip or tar bomb",
        "broken-1.0-py3-none-any.whl": "The archive cannot be read",
        "host\x01ile-1.0.tar.gz": "it may not contain",
        "other_name-1.0-py3-none-any.whl": "real_name-1.0.dist-info directory does not match",
        "zeta-1.0.tar.gz": "The metadata version '2.0' does not match the filename",
    }
    for filename, reason in expected.items():
        assert reason in reasons[filename]
        assert repr(filename)[1:-1] in reasons[filename]  # printable, on one line
        assert "\n" not in reasons[filename]
    assert (count(local, Project), count(local, File), serial(local)) == (0, 0, 0)
    assert local.blob_files() == []


@pytest.mark.anyio
async def test_a_refused_transaction_removes_the_blobs_it_wrote(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    build_wheel(tmp_path, "acme", "1.0")
    await import_directory(tmp_path, local.sessions, local.store)
    with local.sessions.begin() as session:
        session.execute(update(Project).values(status="archived"))
    blobs = local.blob_files()
    build_wheel(dists, "acme", "2.0")

    report = await import_directory(dists, local.sessions, local.store)

    (error,) = report.errors
    assert "project 'acme' is archived: it accepts no new files" in error.line
    assert (count(local, File), local.blob_files()) == (1, blobs)


@pytest.mark.anyio
async def test_progress_is_reported_per_file_in_order(local: LocalStore, dists: Path) -> None:
    build_wheel(dists, "acme", "1.0")
    build_wheel(dists, "acme", "2.0")
    (dists / "notes.txt").write_text("not a distribution")
    seen = await run(local, dists)
    assert [(r.path.name, r.outcome) for r in seen] == [
        ("acme-1.0-py3-none-any.whl", "added"),
        ("acme-2.0-py3-none-any.whl", "added"),
    ]
    assert find_distributions(dists) == [r.path for r in seen]


@pytest.mark.anyio
async def test_upload_times_are_recent_and_in_utc(local: LocalStore, dists: Path) -> None:
    build_sdist(dists, "acme", "1.0")
    await run(local, dists)
    with local.sessions() as session:
        upload_time = session.scalars(select(File.upload_time)).one()
    assert datetime.now(UTC) - upload_time < timedelta(minutes=1)
