"""Every blob store keeps the `BlobStore` contract: atomic, content-addressed writes
and ranged reads. Each test runs on the filesystem and on a real S3 server
(`blob_store` in tests/conftest.py)."""

from __future__ import annotations

import hashlib

import pytest

from packyard.model import ByteRange
from packyard.storage.base import BlobStore, InvalidBlobKey, blob_key, check_key

CHUNK = 1024 * 1024
DATA = bytes(range(256)) * 4096 + b"tail"  # a little over 1 MiB: several read chunks
SHA256 = hashlib.sha256(DATA).hexdigest()
NAME = "a-1.0.tar.gz"


async def store_data(store: BlobStore, data: bytes = DATA, name: str = NAME) -> str:
    async with store.writer(name) as writer:
        await writer.write(data[:1000])
        await writer.write(data[1000:])
        blob = await writer.commit()
    return blob.key


async def read_all(store: BlobStore, key: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, byte_range)])


@pytest.mark.anyio
async def test_commit_stores_under_a_content_addressed_key_with_digests(
    blob_store: BlobStore,
) -> None:
    async with blob_store.writer(NAME) as writer:
        await writer.write(DATA)
        assert writer.size == len(DATA)
        blob = await writer.commit()
    assert blob.key == f"{SHA256[:2]}/{SHA256[2:4]}/{SHA256}/{NAME}"
    assert blob.sha256 == SHA256
    assert blob.blake2_256 == hashlib.blake2b(DATA, digest_size=32).hexdigest()
    assert blob.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert (blob.size, blob.created) == (len(DATA), True)
    assert await read_all(blob_store, blob.key) == DATA
    assert await blob_store.exists(blob.key)


@pytest.mark.anyio
async def test_nothing_is_visible_before_commit(blob_store: BlobStore) -> None:
    async with blob_store.writer(NAME) as writer:
        await writer.write(DATA)
        assert not await blob_store.exists(blob_key(SHA256, NAME))
        await writer.abort()
    assert not await blob_store.exists(blob_key(SHA256, NAME))


@pytest.mark.anyio
async def test_an_exception_inside_the_writer_stores_nothing(blob_store: BlobStore) -> None:
    async def write_then_fail() -> None:
        async with blob_store.writer(NAME) as writer:
            await writer.write(DATA)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert not await blob_store.exists(blob_key(SHA256, NAME))


@pytest.mark.anyio
async def test_a_writer_cannot_be_used_after_commit(blob_store: BlobStore) -> None:
    async with blob_store.writer(NAME) as writer:
        await writer.commit()
        with pytest.raises(RuntimeError):
            await writer.write(b"more")
        with pytest.raises(RuntimeError):
            await writer.commit()


@pytest.mark.anyio
async def test_storing_the_same_bytes_again_reports_it_was_not_created(
    blob_store: BlobStore,
) -> None:
    key = await store_data(blob_store)
    async with blob_store.writer(NAME) as writer:
        await writer.write(DATA)
        again = await writer.commit()
    assert (again.key, again.created) == (key, False)
    assert await read_all(blob_store, key) == DATA


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, len(DATA) - 1),  # all of it
        (0, 0),  # the first byte
        (10, 20),  # the middle
        (CHUNK - 1, CHUNK + 1),  # across a chunk boundary
        (len(DATA) - 5, len(DATA) - 1),  # the tail
        (len(DATA) - 1, len(DATA) - 1),  # the last byte
    ],
)
async def test_ranged_reads_return_exactly_the_range(
    blob_store: BlobStore, start: int, end: int
) -> None:
    key = await store_data(blob_store)
    assert await read_all(blob_store, key, ByteRange(start, end)) == DATA[start : end + 1]


@pytest.mark.anyio
async def test_whole_reads_come_in_bounded_chunks(blob_store: BlobStore) -> None:
    key = await store_data(blob_store)
    chunks = [chunk async for chunk in blob_store.read(key, None)]
    assert b"".join(chunks) == DATA
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= 2 * CHUNK
    suffix = ByteRange.clamp(None, 100, len(DATA))
    assert await read_all(blob_store, key, suffix) == DATA[-100:]


@pytest.mark.anyio
async def test_delete_removes_the_blob(blob_store: BlobStore) -> None:
    key = await store_data(blob_store)
    await blob_store.delete(key)
    await blob_store.delete(key)  # deleting a missing blob is not an error
    assert not await blob_store.exists(key)
    with pytest.raises(FileNotFoundError):
        await read_all(blob_store, key)


@pytest.mark.anyio
async def test_reading_a_missing_blob_raises_file_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        await read_all(blob_store, blob_key(SHA256, "gone.whl"))
    with pytest.raises(FileNotFoundError):
        await read_all(blob_store, blob_key(SHA256, "gone.whl"), ByteRange(0, 9))


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["", "../x", "/etc/passwd", "a//b", "a/../b", "a\\b", "a/./b"])
async def test_unsafe_keys_are_refused(blob_store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)
    with pytest.raises(InvalidBlobKey):
        await blob_store.exists(key)
    with pytest.raises(InvalidBlobKey):
        await blob_store.delete(key)
    with pytest.raises(InvalidBlobKey):
        await read_all(blob_store, key)


@pytest.mark.parametrize(
    ("sha256", "filename"),
    [("0" * 63, "a.whl"), ("G" * 64, "a.whl"), (SHA256, ".."), (SHA256, "a/b.whl"), (SHA256, "")],
)
def test_blob_keys_need_a_digest_and_a_plain_filename(sha256: str, filename: str) -> None:
    with pytest.raises(InvalidBlobKey):
        blob_key(sha256, filename)


@pytest.mark.anyio
async def test_a_writer_refuses_a_filename_that_is_not_a_plain_name(
    blob_store: BlobStore,
) -> None:
    with pytest.raises(InvalidBlobKey):
        async with blob_store.writer("../escape.whl"):
            pass


@pytest.mark.anyio
@pytest.mark.parametrize("durable", [True, False])
async def test_put_stores_a_small_blob_as_a_writer_would(
    blob_store: BlobStore, durable: bool
) -> None:
    blob = await blob_store.put(NAME, DATA, durable=durable)
    assert blob.key == blob_key(SHA256, NAME)
    assert (blob.size, blob.created) == (len(DATA), True)
    assert blob.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert await read_all(blob_store, blob.key) == DATA
    again = await blob_store.put(NAME, DATA, durable=durable)
    assert (again.key, again.created) == (blob.key, False)


@pytest.mark.anyio
async def test_put_refuses_a_bad_name(blob_store: BlobStore) -> None:
    with pytest.raises(InvalidBlobKey):
        await blob_store.put("../escape", DATA)


@pytest.mark.anyio
async def test_an_empty_blob_is_a_blob(blob_store: BlobStore) -> None:
    blob = await blob_store.put("empty.txt", b"")
    assert blob.size == 0
    assert await blob_store.exists(blob.key)
    assert await read_all(blob_store, blob.key) == b""
