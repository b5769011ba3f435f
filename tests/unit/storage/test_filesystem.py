"""The filesystem blob store: atomic, content-addressed writes and ranged reads."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from packyard.model import ByteRange
from packyard.storage.base import InvalidBlobKey, blob_key, check_key
from packyard.storage.filesystem import CHUNK_SIZE, TEMP_DIR, FilesystemBlobStore

DATA = bytes(range(256)) * 4096  # 1 MiB, several read chunks
SHA256 = hashlib.sha256(DATA).hexdigest()


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def store_data(
    store: FilesystemBlobStore, data: bytes = DATA, name: str = "a-1.0.tar.gz"
) -> str:
    async with store.writer(name) as writer:
        await writer.write(data[:1000])
        await writer.write(data[1000:])
        blob = await writer.commit()
    return blob.key


async def read_all(store: FilesystemBlobStore, key: str, byte_range: ByteRange | None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, byte_range)])


@pytest.mark.anyio
async def test_commit_stores_under_a_content_addressed_key_with_digests(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    async with store.writer("a-1.0.tar.gz") as writer:
        await writer.write(DATA)
        assert writer.size == len(DATA)
        blob = await writer.commit()
    assert blob.key == f"{SHA256[:2]}/{SHA256[2:4]}/{SHA256}/a-1.0.tar.gz"
    assert blob.sha256 == SHA256
    assert blob.blake2_256 == hashlib.blake2b(DATA, digest_size=32).hexdigest()
    assert blob.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert (blob.size, blob.created) == (len(DATA), True)
    assert store.local_path(blob.key).read_bytes() == DATA
    assert await store.exists(blob.key)
    assert files_under(tmp_path / TEMP_DIR) == []


@pytest.mark.anyio
async def test_nothing_is_visible_before_commit(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    async with store.writer("a-1.0.tar.gz") as writer:
        await writer.write(DATA)
        assert not await store.exists(blob_key(SHA256, "a-1.0.tar.gz"))
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
async def test_a_writer_cannot_be_used_after_commit(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    async with store.writer("a-1.0.tar.gz") as writer:
        await writer.commit()
        with pytest.raises(RuntimeError):
            await writer.write(b"more")
        with pytest.raises(RuntimeError):
            await writer.commit()


@pytest.mark.anyio
async def test_storing_the_same_bytes_again_reports_it_was_not_created(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    async with store.writer("a-1.0.tar.gz") as writer:
        await writer.write(DATA)
        again = await writer.commit()
    assert (again.key, again.created) == (key, False)
    assert len(files_under(tmp_path)) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, len(DATA) - 1),
        (0, 0),
        (10, 20),
        (CHUNK_SIZE - 1, CHUNK_SIZE + 1),
        (len(DATA) - 5, len(DATA) - 1),
    ],
)
async def test_ranged_reads_return_exactly_the_range(tmp_path: Path, start: int, end: int) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    assert await read_all(store, key, ByteRange(start, end)) == DATA[start : end + 1]


@pytest.mark.anyio
async def test_whole_reads_come_in_bounded_chunks(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    chunks = [chunk async for chunk in store.read(key, None)]
    assert b"".join(chunks) == DATA
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    suffix = ByteRange.clamp(None, 100, len(DATA))
    assert await read_all(store, key, suffix) == DATA[-100:]


@pytest.mark.anyio
async def test_delete_removes_the_blob_and_its_directory(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = await store_data(store)
    await store.delete(key)
    await store.delete(key)  # deleting a missing blob is not an error
    assert not await store.exists(key)
    assert not store.local_path(key).parent.exists()


@pytest.mark.anyio
async def test_reading_a_missing_blob_raises_file_not_found(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        await read_all(store, blob_key(SHA256, "gone.whl"), None)


@pytest.mark.parametrize(
    "key", ["", "../x", "/etc/passwd", "a//b", "a/../b", "a\\b", "a/./b", "a/\x00"]
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)
    with pytest.raises(InvalidBlobKey):
        FilesystemBlobStore(tmp_path).local_path(key)


@pytest.mark.parametrize(
    ("sha256", "filename"),
    [("0" * 63, "a.whl"), ("G" * 64, "a.whl"), (SHA256, ".."), (SHA256, "a/b.whl"), (SHA256, "")],
)
def test_blob_keys_need_a_digest_and_a_plain_filename(sha256: str, filename: str) -> None:
    with pytest.raises(InvalidBlobKey):
        blob_key(sha256, filename)


@pytest.mark.anyio
async def test_a_writer_refuses_a_filename_that_is_not_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidBlobKey):
        async with FilesystemBlobStore(tmp_path).writer("../escape.whl"):
            pass
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
async def test_put_stores_a_small_blob_as_a_writer_would(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    blob = await store.put("a-1.0.tar.gz", DATA)
    assert blob.key == blob_key(SHA256, "a-1.0.tar.gz")
    assert (blob.size, blob.created) == (len(DATA), True)
    assert blob.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert store.local_path(blob.key).read_bytes() == DATA
    again = await store.put("a-1.0.tar.gz", DATA)
    assert (again.key, again.created) == (blob.key, False)
    assert files_under(tmp_path / TEMP_DIR) == []


@pytest.mark.anyio
async def test_put_refuses_a_bad_name_and_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(InvalidBlobKey):
        await store.put("../escape", DATA)
    assert files_under(tmp_path) == []


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
