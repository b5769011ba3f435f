"""Page stores: pages round-trip with every field and their fetch time.

`FilesystemPageStore` on disk; `SharedPageStore` in a blob store and the
database (SQLite and PostgreSQL), shared by replicas.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from anyio.to_thread import run_sync as run
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import CachedPage
from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus
from packyard.repository.page_store import FilesystemPageStore
from packyard.repository.shared_page_store import SharedPageStore
from packyard.storage.filesystem import TEMP_DIR, FilesystemBlobStore

DETAIL = ProjectDetail(
    name="demo",
    files=(
        DistFile(
            "demo-1.0-py3-none-any.whl",
            url="https://user:token@upstream.test/files/demo-1.0-py3-none-any.whl",
            hashes={"sha256": "a" * 64},
            requires_python=">=3.9",
            core_metadata={"sha256": "b" * 64},
            yanked="broken",
            size=123,
            upload_time=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            provenance="https://upstream.test/provenance",
            gpg_sig=False,
        ),
        DistFile("demo-1.0.tar.gz", url="https://upstream.test/f", core_metadata=True, yanked=True),
    ),
    versions=("1.0",),
    status=ProjectStatus("deprecated", "use other"),
    source="pypi",
    private={"hidden": [{"filename": "x", "reason": "policy"}]},
)


def test_a_page_round_trips_with_every_field_and_its_fetch_time(tmp_path: Path) -> None:
    store = FilesystemPageStore(tmp_path)
    store.save_project("demo", DETAIL, 1_700_000_000.0)
    loaded = store.load_project("demo")
    assert loaded is not None
    assert loaded.value == DETAIL
    assert loaded.fetched_at == 1_700_000_000.0
    store.touch("demo", 1_700_000_600.0)
    assert (again := store.load_project("demo")) is not None
    assert again.fetched_at == 1_700_000_600.0


def test_the_project_list_round_trips(tmp_path: Path) -> None:
    store = FilesystemPageStore(tmp_path)
    projects = ProjectList((ProjectEntry("Demo_Pkg"), ProjectEntry("other")))
    store.save_list(projects, 1000.0)
    assert (loaded := store.load_list()) is not None
    assert loaded.value == projects


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 99}', b'{"format": 1}', b"[]"])
def test_an_unreadable_page_counts_as_absent(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "demo.json").write_bytes(content)
    assert FilesystemPageStore(tmp_path).load_project("demo") is None


def test_names_that_are_not_normalised_never_become_paths(tmp_path: Path) -> None:
    store = FilesystemPageStore(tmp_path / "pages")
    assert store.load_project("../secret") is None
    with pytest.raises(ValueError, match="normalised"):
        store.save_project("../secret", DETAIL, 0.0)
    store.delete_project("../secret")
    assert not (tmp_path / "secret.json").exists()


def test_a_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FilesystemPageStore(tmp_path)
    store.save_project("demo", DETAIL, 0.0)
    store.save_project("demo", DETAIL, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]
    assert (tmp_path / "demo.json").stat().st_mode & 0o077 == 0  # may hold credentials


# --- the shared store ------------------------------------------------------------

OTHER = dataclasses.replace(DETAIL, versions=("1.0", "2.0"))


def shared(
    sessions: sessionmaker[Session], root: Path, upstream: str = "pypi-0123"
) -> SharedPageStore:
    """One replica's store: the blob store is shared as a bucket would be."""
    return SharedPageStore(sessions, FilesystemBlobStore(root / "bucket"), upstream)


def blobs(root: Path) -> list[Path]:
    bucket = root / "bucket"
    return sorted(p for p in bucket.rglob("*") if p.is_file() and TEMP_DIR not in p.parts)


def row_of(sessions: sessionmaker[Session], upstream: str, name: str) -> CachedPage | None:
    with sessions() as session:
        return session.get(CachedPage, (upstream, name))


@pytest.mark.anyio
async def test_a_shared_page_round_trips_and_is_loaded_by_another_replica(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    one, other = shared(sessions, tmp_path), shared(sessions, tmp_path)
    await run(one.save_project, "demo", DETAIL, 1_700_000_000.0)
    loaded = await run(other.load_project, "demo")
    assert loaded is not None
    assert loaded.value == DETAIL
    assert loaded.fetched_at == 1_700_000_000.0
    assert other.has_project("demo")  # "maybe": only the database can tell
    assert await run(other.load_project, "missing") is None
    assert await run(shared(sessions, tmp_path, "other-upstream").load_project, "demo") is None

    projects = ProjectList((ProjectEntry("Demo_Pkg"), ProjectEntry("other")))
    await run(other.save_list, projects, 1000.0)
    assert (listed := await run(one.load_list)) is not None
    assert listed.value == projects
    assert listed.fetched_at == 1000.0


@pytest.mark.anyio
async def test_an_unchanged_revalidation_updates_the_fetch_time_only(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    store = shared(sessions, tmp_path)
    await run(store.save_project, "demo", DETAIL, 1000.0)
    before = row_of(sessions, "pypi-0123", "demo")
    written = [(path, path.stat().st_mtime_ns) for path in blobs(tmp_path)]
    await run(store.touch, "demo", 1600.0)
    await run(store.touch, None, 1600.0)  # no list kept: nothing to do
    after = row_of(sessions, "pypi-0123", "demo")
    assert before is not None
    assert after is not None
    assert (after.blob_key, after.sha256, after.fetched_at) == (
        before.blob_key,
        before.sha256,
        1600.0,
    )
    assert [(path, path.stat().st_mtime_ns) for path in blobs(tmp_path)] == written
    assert (again := await run(store.load_project, "demo")) is not None
    assert again.fetched_at == 1600.0


@pytest.mark.anyio
async def test_a_replaced_page_deletes_its_old_blob_unless_another_row_points_at_it(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    first, second = shared(sessions, tmp_path, "first"), shared(sessions, tmp_path, "second")
    await run(first.save_project, "demo", DETAIL, 1.0)
    await run(second.save_project, "demo", DETAIL, 1.0)
    assert len(blobs(tmp_path)) == 1  # content-addressed: the same page is one blob

    await run(first.save_project, "demo", OTHER, 2.0)
    assert len(blobs(tmp_path)) == 2  # the second upstream's row still points at the old one
    assert (kept := await run(second.load_project, "demo")) is not None
    assert kept.value == DETAIL

    await run(second.save_project, "demo", OTHER, 2.0)
    assert len(blobs(tmp_path)) == 1
    await run(first.delete_project, "demo")
    assert len(blobs(tmp_path)) == 1  # still the second's
    await run(second.delete_project, "demo")
    assert blobs(tmp_path) == []
    assert await run(second.load_project, "demo") is None


@pytest.mark.anyio
async def test_concurrent_saves_of_one_page_do_not_fail(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Replicas revalidating one page at once: every save succeeds, one wins, no blob leaks."""
    versions = [dataclasses.replace(DETAIL, versions=(f"{n}.0",)) for n in range(8)]
    replicas = [shared(sessions, tmp_path) for _ in versions]

    async with anyio.create_task_group() as group:
        for n, (replica, version) in enumerate(zip(replicas, versions, strict=True)):
            group.start_soon(run, replica.save_project, "demo", version, float(n))

    loaded = await run(replicas[0].load_project, "demo")
    assert loaded is not None
    assert loaded.value in versions
    assert len(blobs(tmp_path)) == 1


@pytest.mark.anyio
async def test_a_shared_page_whose_blob_is_lost_or_damaged_counts_as_absent(
    tmp_path: Path, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    store = shared(sessions, tmp_path)
    await run(store.save_project, "demo", DETAIL, 1.0)
    (blob,) = blobs(tmp_path)
    blob.write_bytes(b'{"format": 1}')
    assert await run(store.load_project, "demo") is None
    assert "sha256" in caplog.text
    blob.unlink()
    assert await run(store.load_project, "demo") is None
    await run(store.save_project, "demo", DETAIL, 2.0)  # the next fetch repairs it
    assert (loaded := await run(store.load_project, "demo")) is not None
    assert loaded.value == DETAIL


@pytest.mark.anyio
async def test_shared_names_that_are_not_normalised_are_refused(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    store = shared(sessions, tmp_path)
    assert not store.has_project("../secret")
    assert await run(store.load_project, "../secret") is None
    with pytest.raises(ValueError, match="normalised"):
        await run(store.save_project, "../secret", DETAIL, 0.0)
    await run(store.delete_project, "../secret")
    assert blobs(tmp_path) == []
