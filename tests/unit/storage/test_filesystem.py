"""What only the filesystem store does: local paths, temporary files, fsync choices.
The contract every store keeps is tested in test_blob_store.py."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from packyard.storage.base import InvalidBlobKey
from packyard.storage.filesystem import TEMP_DIR, FilesystemBlobStore

DATA = bytes(range(256)) * 4096  # 1 MiB
SHA256 = hashlib.sha256(DATA).hexdigest()


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def store_data(store: FilesystemBlobStore, name: str = "a-1.0.tar.gz") -> str:
    async with store.writer(name) as writer:
        await writer.write(DATA)
        blob = await writer.commit()
    return blob.key


@pytest.mark.anyio
async def test_a_committed_blob_is_a_file_at_its_local_path(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    assert store.local_path(key).read_bytes() == DATA
    assert files_under(tmp_path / TEMP_DIR) == []


@pytest.mark.anyio
async def test_a_writer_spools_into_one_temporary_file_until_commit(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    async with store.writer("a-1.0.tar.gz") as writer:
        await writer.write(DATA)
        assert len(files_under(tmp_path / TEMP_DIR)) == 1
        await writer.abort()
    assert files_under(tmp_path) == []


@pytest.mark.anyio
async def test_an_exception_inside_the_writer_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)

    async def write_then_fail() -> None:
        async with store.writer("a-1.0.tar.gz") as writer:
            await writer.write(DATA)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert files_under(tmp_path) == []


@pytest.mark.anyio
async def test_storing_the_same_bytes_again_keeps_one_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store_data(store)
    await store_data(store)
    assert len(files_under(tmp_path)) == 1


@pytest.mark.anyio
async def test_delete_removes_the_blobs_directory(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    await store.delete(key)
    assert not store.local_path(key).parent.exists()


@pytest.mark.parametrize(
    "key", ["", "../x", "/etc/passwd", "a//b", "a/../b", "a\\b", "a/./b", "a/\x00"]
)
def test_local_path_refuses_unsafe_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        FilesystemBlobStore(tmp_path).local_path(key)


@pytest.mark.anyio
async def test_a_refused_filename_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(InvalidBlobKey):
        async with store.writer("../escape.whl"):
            pass
    with pytest.raises(InvalidBlobKey):
        await store.put("../escape", DATA)
    assert files_under(tmp_path) == []


@pytest.mark.anyio
async def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    (tmp_path / TEMP_DIR).mkdir()
    stale, fresh = tmp_path / TEMP_DIR / "old.part", tmp_path / TEMP_DIR / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert store.remove_stale_temp_files(max_age=60) == 1
    assert files_under(tmp_path) == [fresh]


@pytest.mark.anyio
async def test_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    blob = await store.put("a-1.0.tar.gz", DATA)
    assert store.local_path(blob.key).read_bytes() == DATA
    assert files_under(tmp_path / TEMP_DIR) == []


@pytest.mark.anyio
async def test_a_failed_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    # A plain file where a key's directory must go: the rename into place fails.
    (tmp_path / SHA256[:2]).write_bytes(b"in the way")
    with pytest.raises(OSError):  # noqa: PT011 (the OS decides which one)
        await store.put("a-1.0.tar.gz", DATA)
    assert files_under(tmp_path / TEMP_DIR) == []


@pytest.mark.anyio
async def test_a_put_that_need_not_be_durable_replaces_a_damaged_blob(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    blob = await store.put("a-1.0.tar.gz.metadata", DATA, durable=False)
    store.local_path(blob.key).write_bytes(b"torn by a crash")
    again = await store.put("a-1.0.tar.gz.metadata", DATA, durable=False)
    assert (again.key, again.created) == (blob.key, False)
    assert store.local_path(blob.key).read_bytes() == DATA
    assert files_under(tmp_path / TEMP_DIR) == []
