"""FileCache replicas on one database: they share one LRU and evict together.

Each "replica" is a `FileCache` of its own over the same database (SQLite and
PostgreSQL) and the same blob store, as replicas share an S3 bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import CachedFile
from packyard.model import ByteRange, RemoteBody, RemoteFile, StoredFile
from packyard.repository.file_cache import TOUCH_INTERVAL, FileCache
from packyard.storage.filesystem import FilesystemBlobStore

pytestmark = pytest.mark.anyio

SIZE = 120


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class BytesOpener:
    """Streams the bytes of `files[url]`."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        content = self.files[url]

        async def chunks() -> AsyncIterator[bytes]:
            yield content

        yield RemoteBody(len(content), chunks())


class CheckedStore(FilesystemBlobStore):
    """A blob store that records, at each delete, whether a row still named the blob."""

    def __init__(self, root: Path, sessions: sessionmaker[Session]) -> None:
        super().__init__(root)
        self.sessions = sessions
        self.deleted: list[tuple[str, bool]] = []

    async def delete(self, key: str) -> None:
        with self.sessions() as session:
            row = session.scalar(select(CachedFile.key).where(CachedFile.key == key))
        self.deleted.append((key, row is not None))
        await super().delete(key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, sessions: sessionmaker[Session]) -> CheckedStore:
    return CheckedStore(tmp_path / "bucket", sessions)


@pytest.fixture
def replica(
    sessions: sessionmaker[Session], store: CheckedStore, clock: Clock
) -> Callable[[], FileCache]:
    return lambda: FileCache(sessions, store, 250, clock=clock)


def remote(name: str) -> RemoteFile:
    content = name.encode().ljust(SIZE, b".")
    url = f"memory://{name}"
    return RemoteFile(
        name,
        url,
        BytesOpener({url: content}),
        "mem",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


async def cache_through(cache: FileCache, name: str, clock: Clock) -> None:
    """A client downloads `name` through `cache` (a miss), which keeps it."""
    clock.now += 2 * TOUCH_INTERVAL
    resource = remote(name)
    assert await cache.lookup(resource) is None
    teed = cache.tee(resource)
    async with teed.opener.open(teed.url, None) as body:
        async for _ in body.chunks:
            pass


async def hit(cache: FileCache, name: str, clock: Clock) -> bool:
    clock.now += 2 * TOUCH_INTERVAL
    return isinstance(await cache.lookup(remote(name)), StoredFile)


async def test_a_file_cached_by_one_replica_is_served_by_another(
    replica: Callable[[], FileCache], clock: Clock
) -> None:
    one, other = replica(), replica()
    await cache_through(one, "a-1.0.tar.gz", clock)
    stored = await other.lookup(remote("a-1.0.tar.gz"))
    assert isinstance(stored, StoredFile)
    assert stored.size == SIZE


async def test_replicas_share_one_lru_and_evict_together(
    replica: Callable[[], FileCache], store: CheckedStore, clock: Clock
) -> None:
    one, other = replica(), replica()
    await cache_through(one, "a-1.0.tar.gz", clock)
    await cache_through(other, "b-1.0.tar.gz", clock)
    assert await hit(other, "a-1.0.tar.gz", clock)  # now b is the least recently used
    await cache_through(one, "c-1.0.tar.gz", clock)  # past 250 bytes: one evicts b

    for cache in (one, other):
        assert await hit(cache, "a-1.0.tar.gz", clock)
        assert not await hit(cache, "b-1.0.tar.gz", clock)
        assert await hit(cache, "c-1.0.tar.gz", clock)
    assert await asyncio.to_thread(other.index.total) == 2 * SIZE
    # The row went before the blob: no replica found a row whose blob was gone.
    assert [(key.rsplit("/", 1)[1], row) for key, row in store.deleted] == [("b-1.0.tar.gz", False)]


async def test_replicas_evicting_at_once_delete_each_file_once(
    sessions: sessionmaker[Session], store: CheckedStore, clock: Clock
) -> None:
    big = FileCache(sessions, store, 10**9, clock=clock)  # fills without evicting
    names = [f"f{n}-1.0.tar.gz" for n in range(12)]
    for name in names:
        await cache_through(big, name, clock)
    replicas = [FileCache(sessions, store, 5 * SIZE, clock=clock) for _ in range(4)]

    evicted = await asyncio.gather(*(cache.evict() for cache in replicas))

    assert sum(evicted) == 7  # the 7 least recently used, each by one replica only
    assert sorted(key.rsplit("/", 1)[1] for key, _ in store.deleted) == sorted(names[:7])
    assert all(not row for _, row in store.deleted)
    for name in names:
        assert await hit(big, name, clock) == (name in names[7:])


async def test_a_hit_refreshes_the_shared_access_time_at_most_once_a_minute(
    replica: Callable[[], FileCache], sessions: sessionmaker[Session], clock: Clock
) -> None:
    one, other = replica(), replica()
    await cache_through(one, "a-1.0.tar.gz", clock)

    def last_access() -> float:
        with sessions() as session:
            value = session.scalar(select(CachedFile.last_access))
            assert value is not None
            return float(value)

    recorded = last_access()
    clock.now += TOUCH_INTERVAL / 2
    assert isinstance(await other.lookup(remote("a-1.0.tar.gz")), StoredFile)
    assert last_access() == recorded  # no write for a recent access
    clock.now += TOUCH_INTERVAL
    assert isinstance(await other.lookup(remote("a-1.0.tar.gz")), StoredFile)
    assert last_access() == clock.now
