"""Replica-local copies of S3 blobs (`storage/local_copies.py`), against a real SeaweedFS:
filled by a whole read, kept only whole and matching their key, bounded least
recently used first across processes, never in the way of a read. The `BlobStore`
contract itself is tested in test_blob_store.py (its `s3+copies` variant)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import anyio
import obstore
import pytest

from packyard.model import ByteRange, StoredFile
from packyard.routes.files import FilesRoute
from packyard.settings import Settings
from packyard.storage.base import blob_key
from packyard.storage.local_copies import (
    COPIES_DIR,
    STALE_TEMP,
    TEMP_DIR,
    WRITE_BATCH,
    LocalCopies,
    LocalCopyStore,
)
from packyard.storage.location import open_blob_storage
from packyard.storage.s3 import S3BlobStore
from tests.seaweedfs import SeaweedServer
from tests.unit.routes.test_files import FakeChain, call, scope_for

DATA = hashlib.shake_256(b"copies").digest(6 * 1024 * 1024 + 3)  # more than one write batch
NAME = "big-1.0-py3-none-any.whl"
BOOT = "boot-1"
MiB = 1024 * 1024


@pytest.fixture
def s3(s3_server: SeaweedServer, tmp_path: Path) -> Iterator[S3BlobStore]:
    """The S3 store of area "files" in a bucket of this test's own, without copies."""
    with s3_server.bucket() as bucket:
        settings = Settings(
            data_dir=tmp_path, storage_url=f"s3://{bucket}/packyard", s3=s3_server.s3_settings()
        )
        store = open_blob_storage(settings, environ={}, local_copies=False).store("files")
        assert isinstance(store, S3BlobStore)
        yield store


@pytest.fixture
def copies(tmp_path: Path) -> LocalCopies:
    return LocalCopies(tmp_path / COPIES_DIR, 64 * MiB, boot_id=BOOT)


@pytest.fixture
def store(s3: S3BlobStore, copies: LocalCopies) -> LocalCopyStore:
    return LocalCopyStore(s3, copies, "files")


async def read_all(store: LocalCopyStore, key: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, byte_range)])


def temp_files(copies: LocalCopies) -> list[Path]:
    temp_dir = copies.root / TEMP_DIR
    return sorted(temp_dir.iterdir()) if temp_dir.exists() else []


async def put_object(s3: S3BlobStore, key: str, content: bytes) -> None:
    """Put `content` under `key` directly, bypassing the content-addressed write."""
    await obstore.put_async(s3.client, f"{s3.prefix}/{key}", content)


@pytest.mark.anyio
async def test_a_first_read_fills_the_copy_and_a_second_is_served_from_it(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA)).key
    assert store.local_path(key) is None

    assert await read_all(store, key) == DATA

    path = store.local_path(key)
    assert path == copies.root / "files" / key
    assert path.read_bytes() == DATA
    assert temp_files(copies) == []
    await s3.delete(key)  # the second read never reaches S3
    assert await read_all(store, key) == DATA
    assert await read_all(store, key, ByteRange(5, 9)) == DATA[5:10]


@pytest.mark.anyio
async def test_a_ranged_read_of_a_missing_copy_goes_to_s3_and_fills_nothing(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA)).key
    assert await read_all(store, key, ByteRange(100, 199)) == DATA[100:200]
    assert store.local_path(key) is None
    assert temp_files(copies) == []


@pytest.mark.anyio
async def test_bytes_that_do_not_match_their_key_are_never_kept(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies, caplog: pytest.LogCaptureFixture
) -> None:
    key = blob_key(hashlib.sha256(DATA).hexdigest(), NAME)
    wrong = DATA[:-1] + b"!"
    await put_object(s3, key, wrong)

    with caplog.at_level(logging.WARNING, logger="packyard.storage.local_copies"):
        assert await read_all(store, key) == wrong  # what S3 holds, as without copies

    assert store.local_path(key) is None
    assert temp_files(copies) == []
    assert "do not match" in caplog.text


@pytest.mark.anyio
async def test_a_read_stopped_midway_leaves_no_temporary_file_and_no_copy(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA * 3)).key
    chunks = store.read(key, None)
    received = 0
    while received < 5 * MiB:  # past the first write batch: a temporary file exists
        received += len(await anext(chunks))
    assert len(temp_files(copies)) == 1

    await chunks.aclose()  # type: ignore[attr-defined]  # as the route does when a client goes

    assert temp_files(copies) == []
    assert store.local_path(key) is None


@pytest.mark.anyio
async def test_a_cancelled_read_leaves_no_temporary_file(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA)).key
    with anyio.move_on_after(30) as scope:
        async for _ in store.read(key, None):
            if temp_files(copies):
                scope.cancel()
    assert scope.cancelled_caught
    assert temp_files(copies) == []
    assert store.local_path(key) is None


@pytest.mark.anyio
async def test_two_concurrent_fills_of_one_key_give_one_right_copy(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA)).key
    results: list[bytes] = []

    async def read() -> None:
        results.append(await read_all(store, key))

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(read)

    assert results == [DATA, DATA]
    path = store.local_path(key)
    assert path is not None
    assert path.read_bytes() == DATA
    assert temp_files(copies) == []
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.anyio
async def test_a_copy_evicted_after_local_path_is_read_from_s3(
    store: LocalCopyStore, s3: S3BlobStore
) -> None:
    key = (await s3.put(NAME, DATA)).key
    await read_all(store, key)
    path = store.local_path(key)
    assert path is not None

    path.unlink()  # another worker process evicts it before the caller opens it

    assert await read_all(store, key) == DATA
    assert store.local_path(key) == path  # and filled again


@pytest.mark.anyio
async def test_an_open_copy_is_read_whole_even_if_evicted_meanwhile(
    store: LocalCopyStore, s3: S3BlobStore
) -> None:
    key = (await s3.put(NAME, DATA)).key
    await read_all(store, key)
    await s3.delete(key)
    chunks = store.read(key, None)
    first = await anext(chunks)

    path = store.local_path(key)
    assert path is not None
    path.unlink()

    assert first + b"".join([chunk async for chunk in chunks]) == DATA


@pytest.mark.anyio
async def test_a_copy_that_cannot_be_read_is_read_from_s3(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, DATA)).key
    (copies.root / "files" / key).mkdir(parents=True)  # there, but no file to read

    assert await read_all(store, key) == DATA


@pytest.mark.anyio
async def test_delete_removes_the_copy_and_the_object(
    store: LocalCopyStore, s3: S3BlobStore
) -> None:
    key = (await s3.put(NAME, DATA)).key
    await read_all(store, key)
    path = store.local_path(key)
    assert path is not None

    await store.delete(key)

    assert not path.exists()
    assert not path.parent.exists()
    assert not await store.exists(key)
    with pytest.raises(FileNotFoundError):
        await read_all(store, key)


@pytest.mark.anyio
async def test_a_full_disk_abandons_the_copy_not_the_read(
    store: LocalCopyStore,
    s3: S3BlobStore,
    copies: LocalCopies,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = (await s3.put(NAME, DATA)).key
    temp = copies.root / TEMP_DIR / "full.part"

    def open_full() -> tuple[BinaryIO, Path]:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.touch()
        return Path("/dev/full").open("wb"), temp  # every write fails: ENOSPC

    monkeypatch.setattr(copies, "open_temp", open_full)
    with caplog.at_level(logging.WARNING, logger="packyard.storage.local_copies"):
        assert await read_all(store, key) == DATA

    assert store.local_path(key) is None
    assert not temp.exists()
    assert "No space left on device" in caplog.text


@pytest.mark.anyio
async def test_a_blob_over_a_quarter_of_the_bound_is_not_copied(
    s3: S3BlobStore, tmp_path: Path
) -> None:
    copies = LocalCopies(tmp_path / COPIES_DIR, 4 * len(DATA) - 4, boot_id=BOOT)
    store = LocalCopyStore(s3, copies, "files")
    key = (await s3.put(NAME, DATA)).key

    assert await read_all(store, key) == DATA

    assert store.local_path(key) is None
    assert temp_files(copies) == []


def set_last_use(path: Path, seconds_ago: float) -> None:
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))


@pytest.mark.anyio
async def test_the_bound_evicts_the_least_recently_used_copies(
    s3: S3BlobStore, tmp_path: Path
) -> None:
    size = 90 * 1024
    copies = LocalCopies(tmp_path / COPIES_DIR, 400 * 1024, boot_id=BOOT)  # holds four
    store = LocalCopyStore(s3, copies, "files")
    keys = []
    for n in range(5):
        keys.append((await s3.put(f"b{n}.whl", bytes([n]) * size)).key)
    for age, key in zip((40, 30, 20, 10), keys[:4], strict=True):
        await read_all(store, key)
        path = store.local_path(key)
        assert path is not None
        set_last_use(path, age)  # keys[0] is the oldest
    assert await read_all(store, keys[0]) == bytes([0]) * size  # ... and now the newest

    await read_all(store, keys[4])  # past the bound: a scan evicts to 90% of it

    kept = [store.local_path(key) is not None for key in keys]
    assert kept == [True, False, True, True, True]
    assert not (copies.root / "files" / keys[1]).parent.exists()


@pytest.mark.anyio
async def test_processes_sharing_the_directory_keep_it_bounded(
    s3: S3BlobStore, tmp_path: Path
) -> None:
    size = 90 * 1024
    bound = 400 * 1024
    # Two worker processes: each knows only its own fills until it scans.
    first = LocalCopyStore(s3, LocalCopies(tmp_path / COPIES_DIR, bound, boot_id=BOOT), "files")
    second = LocalCopyStore(s3, LocalCopies(tmp_path / COPIES_DIR, bound, boot_id=BOOT), "files")
    keys = [(await s3.put(f"b{n}.whl", bytes([n]) * size)).key for n in range(6)]
    for n, key in enumerate(keys):
        await read_all(first if n % 2 else second, key)
        path = first.local_path(key)
        assert path is not None
        set_last_use(path, 60 - n)
    # Six copies (540 KiB) in a directory bounded to 400 KiB: neither process
    # has seen past the bound yet. The next fill's scan sees them all.
    assert sum(p.stat().st_size for p in (tmp_path / COPIES_DIR).rglob("*.whl")) == 6 * size
    await read_all(second, keys[0])  # a hit: marked used, no scan
    newest = (await s3.put("b6.whl", b"6" * size)).key
    second.copies._scanned_at = 0.0  # long ago: a scan is due at the next fill
    await read_all(second, newest)

    total = sum(p.stat().st_size for p in (tmp_path / COPIES_DIR).rglob("*.whl"))
    assert total <= bound * 0.9
    assert first.local_path(newest) is not None
    assert first.local_path(keys[0]) is not None  # used last
    assert first.local_path(keys[1]) is None  # the least recently used


@pytest.mark.anyio
async def test_a_scan_removes_crashed_fills_and_earlier_boots_copies(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies
) -> None:
    key = (await s3.put(NAME, b"small")).key
    temp_dir = copies.root / TEMP_DIR
    temp_dir.mkdir(parents=True)
    crashed, writing = temp_dir / "crashed.part", temp_dir / "writing.part"
    crashed.write_bytes(b"half")
    writing.write_bytes(b"half")
    set_last_use(crashed, STALE_TEMP + 60)
    earlier = copies.directory / "boot-0" / "files" / key
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"maybe torn by a power cut")
    assert store.local_path(key) is None  # another boot's copy is never read

    assert await read_all(store, key) == b"small"  # the first fill scans

    assert sorted(temp_dir.iterdir()) == [writing]
    assert not earlier.exists()
    assert sorted(p.name for p in copies.directory.iterdir()) == [BOOT]


@pytest.mark.anyio
async def test_an_empty_blob_is_copied_and_read_back(
    store: LocalCopyStore, s3: S3BlobStore
) -> None:
    key = (await s3.put("empty.txt", b"")).key
    assert await read_all(store, key) == b""
    path = store.local_path(key)
    assert path is not None
    assert path.read_bytes() == b""
    assert await read_all(store, key) == b""


@pytest.mark.anyio
async def test_without_a_boot_id_copies_are_fsynced(
    s3: S3BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = LocalCopies(tmp_path / COPIES_DIR, 64 * MiB, boot_id=None)
    store = LocalCopyStore(s3, copies, "files")
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    key = (await s3.put(NAME, b"durable")).key

    await read_all(store, key)

    assert store.local_path(key) is not None
    assert len(synced) == 1


# --- wiring (storage/location.py) ------------------------------------------------------


def s3_settings(tmp_path: Path, role: str = "all", **s3: object) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "storage_url": "s3://bucket/site",
            "role": role,
            "s3": {"endpoint_url": "http://127.0.0.1:1", **s3},
        }
    )


def test_files_and_cached_files_share_one_bound_and_pages_are_not_copied(
    tmp_path: Path,
) -> None:
    settings = s3_settings(tmp_path, local_copies_mb=10)
    storage = open_blob_storage(settings, environ={}, local_copies=True)
    files, cached = storage.store("files"), storage.store("cache/files")
    assert isinstance(files, LocalCopyStore)
    assert isinstance(cached, LocalCopyStore)
    assert files.copies is cached.copies
    assert files.copies.max_bytes == 10 * MiB
    assert files.copies.root.parent == tmp_path / COPIES_DIR
    assert isinstance(storage.store("cache/pages"), S3BlobStore)


@pytest.mark.parametrize(
    ("role", "size", "local_copies"),
    [
        ("all", 0, True),  # turned off
        ("upload", 4096, True),  # serves no /files/
        ("browser", 4096, True),
        ("all", 4096, False),  # the tools: `packyard verify`, import...
    ],
)
def test_copies_are_off_at_zero_for_other_roles_and_for_the_tools(
    tmp_path: Path, role: str, size: int, local_copies: bool
) -> None:
    settings = s3_settings(tmp_path, role, local_copies_mb=size)
    storage = open_blob_storage(settings, environ={}, local_copies=local_copies)
    assert isinstance(storage.store("files"), S3BlobStore)
    assert isinstance(storage.store("cache/files"), S3BlobStore)


# --- the /files/ route over copies (routes/files.py) -----------------------------------

PATHSEND: dict[str, object] = {"http.response.pathsend": {}}


@pytest.mark.anyio
async def test_the_files_route_streams_a_copy_evicted_after_it_was_found(
    store: LocalCopyStore, s3: S3BlobStore
) -> None:
    blob = await s3.put(NAME, DATA)
    resource = StoredFile(NAME, blob.key, len(DATA), blob.sha256, store)
    route = FilesRoute(FakeChain(resource))
    url = f"/files/big/{NAME}"
    assert (await call(route, scope_for(url, None))).body == DATA  # fills the copy
    path = store.local_path(blob.key)
    assert path is not None
    sent = await call(route, scope_for(url, None, extensions=PATHSEND))
    assert sent.messages[1] == {"type": "http.response.pathsend", "path": str(path)}

    path.unlink()  # evicted by another worker process

    # uvicorn (no pathsend): the store opens the copy itself, or reads S3 without it.
    streamed = await call(route, scope_for(url, None))
    assert (streamed.status, streamed.body) == (200, DATA)
    path.unlink()  # evicted again
    # A server with pathsend is handed no path that is gone: the bytes are streamed.
    streamed = await call(route, scope_for(url, None, extensions=PATHSEND))
    assert (streamed.status, streamed.body) == (200, DATA)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "size", [1000, WRITE_BATCH - 1, WRITE_BATCH + 1000, 3 * WRITE_BATCH, len(DATA)]
)
async def test_a_reader_that_stops_at_the_last_byte_leaves_a_whole_copy(
    store: LocalCopyStore, s3: S3BlobStore, copies: LocalCopies, size: int
) -> None:
    """A client that has every byte goes away at once (it knows Content-Length):
    the copy must be complete by then, not at the read's end that follows."""
    data = (DATA * 2)[:size]
    key = (await s3.put(NAME, data)).key
    chunks = store.read(key, None)
    received = b""
    while len(received) < len(data):
        received += await anext(chunks)

    await chunks.aclose()  # type: ignore[attr-defined]

    assert received == data
    path = store.local_path(key)
    assert path is not None
    assert path.read_bytes() == data
    assert temp_files(copies) == []
