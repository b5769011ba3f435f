"""What only the S3 store does, against a real SeaweedFS: create-only commits under
concurrency, multipart commits, nothing left by an abort, errors of a store that is
down (and its recovery), presigned URLs. The contract every store keeps is tested
in test_blob_store.py."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import obstore
import pytest

from packyard.errors import StoreUnavailable
from packyard.model import ByteRange
from packyard.routes.errors import error_parts
from packyard.settings import Settings
from packyard.storage.base import StoredBlob, blob_key
from packyard.storage.location import BlobStorage, open_blob_storage
from packyard.storage.s3 import TEMP_PREFIX, S3BlobStore
from tests.seaweedfs import SeaweedServer, seaweedfs_for_tests

DATA = bytes(range(256)) * 4096 * 6 + b"odd"  # 6 MiB and a bit: two parts of 5 MiB+
SHA256 = hashlib.sha256(DATA).hexdigest()
NAME = "big-1.0-py3-none-any.whl"
SMALL_LIMIT = 1024 * 1024  # blobs above this go through the multipart path


def storage_on(server: SeaweedServer, bucket: str, tmp_path: Path) -> BlobStorage:
    settings = Settings(
        data_dir=tmp_path, storage_url=f"s3://{bucket}/packyard", s3=server.s3_settings()
    )
    return open_blob_storage(settings, environ={})


@pytest.fixture
def bucket(s3_server: SeaweedServer) -> Iterator[str]:
    with s3_server.bucket() as name:
        yield name


@pytest.fixture
def storage(s3_server: SeaweedServer, bucket: str, tmp_path: Path) -> BlobStorage:
    return storage_on(s3_server, bucket, tmp_path)


@pytest.fixture(params=["single put", "multipart"])
def store(request: pytest.FixtureRequest, storage: BlobStorage) -> S3BlobStore:
    """The store of area "files", committing DATA in one PUT or in parts."""
    files = storage.store("files")
    assert isinstance(files, S3BlobStore)
    limit = len(DATA) if request.param == "single put" else SMALL_LIMIT
    return S3BlobStore(files.client, files.prefix, files.name, single_put_limit=limit)


async def objects_in(storage: BlobStorage) -> list[str]:
    files = storage.store("files")
    assert isinstance(files, S3BlobStore)
    paths = [meta["path"] async for batch in obstore.list(files.client) for meta in batch]
    return sorted(paths)


async def commit(store: S3BlobStore, data: bytes = DATA) -> StoredBlob:
    async with store.writer(NAME) as writer:
        for start in range(0, len(data), 1024 * 1024):
            await writer.write(data[start : start + 1024 * 1024])
        return await writer.commit()


async def read_all(store: S3BlobStore, key: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, byte_range)])


@pytest.mark.anyio
async def test_a_commit_stores_one_object_and_no_staging_object(
    store: S3BlobStore, storage: BlobStorage
) -> None:
    blob = await commit(store)
    assert (blob.key, blob.size, blob.created) == (blob_key(SHA256, NAME), len(DATA), True)
    assert await read_all(store, blob.key) == DATA
    assert await objects_in(storage) == [f"packyard/files/{blob.key}"]


@pytest.mark.anyio
async def test_concurrent_commits_of_one_blob_make_one_object_and_one_creator(
    store: S3BlobStore, storage: BlobStorage
) -> None:
    results: list[StoredBlob] = []

    async def one() -> None:
        results.append(await commit(store))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(one)
    assert {blob.key for blob in results} == {blob_key(SHA256, NAME)}
    creators = sum(blob.created for blob in results)
    if store.single_put_limit >= len(DATA):
        assert creators == 1  # a conditional PUT is decided atomically
    else:
        # SeaweedFS checks If-None-Match on CompleteMultipartUpload before it
        # completes, not atomically with it (docs/decisions.md): racing large
        # commits may each be told they created the object. AWS S3 decides it.
        assert creators >= 1
    assert await objects_in(storage) == [f"packyard/files/{blob_key(SHA256, NAME)}"]
    assert await read_all(store, results[0].key) == DATA


@pytest.mark.anyio
async def test_an_aborted_or_failed_writer_leaves_nothing(
    store: S3BlobStore, storage: BlobStorage
) -> None:
    async with store.writer(NAME) as writer:
        await writer.write(DATA)
        await writer.abort()

    async def write_then_fail() -> None:
        async with store.writer(NAME) as writer:
            await writer.write(DATA)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await objects_in(storage) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),  # first byte
        (5 * 1024 * 1024 - 2, 5 * 1024 * 1024 + 2),  # middle, across the multipart seam
        (len(DATA) - 1, len(DATA) - 1),  # last byte
    ],
)
async def test_ranges_of_a_large_blob(store: S3BlobStore, start: int, end: int) -> None:
    blob = await commit(store)
    assert await read_all(store, blob.key, ByteRange(start, end)) == DATA[start : end + 1]
    suffix = ByteRange.clamp(None, 10, len(DATA))
    assert await read_all(store, blob.key, suffix) == DATA[-10:]


@pytest.mark.anyio
async def test_a_missing_object_is_file_not_found_naming_the_key(storage: BlobStorage) -> None:
    files = storage.store("files")
    key = blob_key(SHA256, NAME)
    with pytest.raises(FileNotFoundError, match=NAME):
        await anext(aiter(files.read(key, None)))
    assert not await files.exists(key)
    await files.delete(key)  # not an error


@pytest.mark.anyio
async def test_areas_share_one_client_under_their_own_prefixes(storage: BlobStorage) -> None:
    files, cached = storage.store("files"), storage.store("cache/files")
    assert isinstance(files, S3BlobStore)
    assert isinstance(cached, S3BlobStore)
    assert files.client is cached.client
    assert storage.store("files") is files
    await files.put("a.txt", b"a")
    await cached.put("b.txt", b"b")
    assert [path.split("/")[:3] for path in await objects_in(storage)] == [
        ["packyard", "cache", "files"],
        ["packyard", "files", hashlib.sha256(b"a").hexdigest()[:2]],
    ]
    assert files.name == f"s3://{storage.url.removeprefix('s3://')}/files"


@pytest.mark.anyio
async def test_a_presigned_url_serves_the_blob(storage: BlobStorage) -> None:
    files = storage.store("files")
    assert isinstance(files, S3BlobStore)
    blob = await files.put("a.txt", b"hello")
    url = await files.presigned_url(blob.key, expires_in=60)
    assert url.startswith("http://127.0.0.1:")
    assert "X-Amz-Expires=60" in url

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())

    assert await anyio.to_thread.run_sync(get) == b"hello"


@pytest.mark.anyio
async def test_stale_staging_objects_are_removed_and_fresh_ones_kept(
    storage: BlobStorage,
) -> None:
    files = storage.store("files")
    assert isinstance(files, S3BlobStore)
    await obstore.put_async(files.client, f"{files.prefix}/{TEMP_PREFIX}/left.part", b"x")
    assert await files.remove_stale_temp_objects() == 0
    await anyio.sleep(1.1)  # S3 times have whole seconds
    assert await files.remove_stale_temp_objects(max_age=0.5) == 1
    assert await objects_in(storage) == []


def test_store_unavailable_is_a_503_with_retry_after() -> None:
    status, headers, body = error_parts(StoreUnavailable("s3://b/p", "connection refused"))
    assert status == 503
    assert (b"retry-after", b"30") in headers
    assert body == b"The blob store s3://b/p is unavailable: connection refused\n"


@pytest.fixture
async def own_server() -> AsyncIterator[SeaweedServer]:
    """A SeaweedFS of this test's own, to stop and start again (skipped and failed
    as `s3_server` is)."""
    with seaweedfs_for_tests() as server:
        yield server


@pytest.mark.anyio
async def test_a_stopped_server_is_unavailable_and_the_same_store_recovers(
    own_server: SeaweedServer, tmp_path: Path
) -> None:
    bucket = own_server.create_bucket()
    storage = storage_on(own_server, bucket, tmp_path)
    files = storage.store("files")
    blob = await files.put("a.txt", b"kept")
    own_server.stop(keep_files=True)

    name = f"s3://{bucket}/packyard/files"
    with pytest.raises(StoreUnavailable, match=f"The blob store {name} is unavailable") as error:
        await anext(aiter(files.read(blob.key, None)))
    assert isinstance(error.value, OSError)
    with pytest.raises(StoreUnavailable, match=name):
        await files.put("b.txt", b"new")
    with pytest.raises(StoreUnavailable, match=name):
        await commit_small(files)
    with pytest.raises(StoreUnavailable, match=name):
        await files.exists(blob.key)
    with pytest.raises(StoreUnavailable):
        await storage.ping()

    await anyio.to_thread.run_sync(own_server.start)
    await storage.ping()
    assert await read_all_of(files, blob.key) == b"kept"
    assert (await files.put("b.txt", b"new")).created


async def commit_small(store: object) -> None:
    assert isinstance(store, S3BlobStore)
    async with store.writer("c.txt") as writer:
        await writer.write(b"new")
        await writer.commit()


async def read_all_of(store: object, key: str) -> bytes:
    assert isinstance(store, S3BlobStore)
    return await read_all(store, key)
