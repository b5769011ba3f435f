"""CacheRepository over an in-memory upstream: freshness, failures, persistence, files."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import cast

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from sqlalchemy.orm import Session, sessionmaker

from packyard.errors import ProjectNotFound, StoreUnavailable, UpstreamError, UpstreamUnavailable
from packyard.model import (
    ANONYMOUS,
    ByteRange,
    ProjectDetail,
    RemoteBody,
    RemoteFile,
    RequestContext,
    Resource,
    StoredFile,
)
from packyard.repository.base import IdentityMemo
from packyard.repository.cache import CacheRepository
from packyard.repository.file_cache import FileCache
from packyard.repository.page_store import FilesystemPageStore, PageStore
from packyard.repository.shared_page_store import SharedPageStore
from packyard.storage.base import BlobStore, BlobWriter
from packyard.storage.filesystem import TEMP_DIR, FilesystemBlobStore
from tests.unit.fakes import MemoryRepository, part_of

pytestmark = pytest.mark.anyio

TTL = 600.0
SDIST = "demo-1.0.tar.gz"
WHEEL = "demo-1.0-py3-none-any.whl"
CONTENT = {SDIST: b"sdist bytes " * 10, WHEEL: b"wheel bytes " * 20}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class MemoryOpener:
    """Streams `memory://<project>/<filename>` from the upstream's dict, in small chunks.

    `corrupt` flips the last byte; `cut` breaks off after the first chunk.
    """

    def __init__(self, upstream: MemoryUpstream) -> None:
        self.upstream = upstream
        self.corrupt = False
        self.cut = False
        self.opens = 0

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        self.opens += 1
        project, filename = url.removeprefix("memory://").split("/")
        content = self.upstream.projects[project][filename]
        if self.corrupt:
            content = content[:-1] + bytes([content[-1] ^ 1])
        content = part_of(content, byte_range)
        yield RemoteBody(len(content), self._chunks(content))

    async def _chunks(self, content: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(content), 16):
            if self.cut and start > 0:
                raise UpstreamUnavailable("mem", "ended the response early")
            await anyio.lowlevel.checkpoint()
            yield content[start : start + 16]


class MemoryUpstream(MemoryRepository):
    """A MemoryRepository whose files have URLs and an opener, like an upstream.

    `gate`, when set, holds every page request until it is set.
    """

    def __init__(self, projects: dict[str, dict[str, bytes]]) -> None:
        super().__init__("mem", projects)
        self.opener = MemoryOpener(self)
        self.gate: anyio.Event | None = None
        self._with_urls: IdentityMemo[ProjectDetail, ProjectDetail] = IdentityMemo(_with_urls)

    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        if self.gate is not None:
            await self.gate.wait()
        return self._with_urls(name, await super().get_project(name, ctx))

    def publish(self, name: str, filename: str, content: bytes) -> None:
        self.projects.setdefault(name, {})[filename] = content
        self._details.pop(name, None)


def _with_urls(detail: ProjectDetail) -> ProjectDetail:
    files = tuple(
        dataclasses.replace(f, url=f"memory://{detail.name}/{f.filename}") for f in detail.files
    )
    return dataclasses.replace(detail, files=files)


@pytest.fixture
def upstream() -> MemoryUpstream:
    return MemoryUpstream({"demo": dict(CONTENT)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["filesystem", "shared"])
def pages(
    request: pytest.FixtureRequest, tmp_path: Path, sessions: sessionmaker[Session]
) -> Callable[[], PageStore]:
    """Page stores of one upstream, as each new replica (or restart) makes them:
    files under `pages/`, or blobs under `page-blobs/` and rows in the database."""
    if request.param == "filesystem":
        return lambda: FilesystemPageStore(tmp_path / "pages")
    return lambda: SharedPageStore(sessions, FilesystemBlobStore(tmp_path / "page-blobs"), "mem")


@pytest.fixture
def make_cache(
    tmp_path: Path,
    upstream: MemoryUpstream,
    clock: Clock,
    sessions: sessionmaker[Session],
    pages: Callable[[], PageStore],
) -> Callable[..., CacheRepository]:
    def make(max_bytes: int = 10**9, not_found_ttl: float = 60.0) -> CacheRepository:
        store = FilesystemBlobStore(tmp_path / "files")
        files = FileCache(sessions, store, max_bytes, clock=clock)
        return CacheRepository(
            upstream,
            label=upstream.label,
            opener=upstream.opener,
            pages=pages(),
            files=files,
            page_ttl=TTL,
            not_found_ttl=not_found_ttl,
            clock=clock,
        )

    return make


@pytest.fixture
def cache(make_cache: Callable[..., CacheRepository]) -> CacheRepository:
    return make_cache()


async def eventually(check: Callable[[], bool]) -> None:
    """Let background tasks run until `check()` holds (or fail after a while)."""
    with anyio.fail_after(5):
        while not check():  # noqa: ASYNC110 - polls state set by background tasks
            await anyio.sleep(0.001)


async def settle() -> None:
    """Give background tasks plenty of turns to run (and show they did nothing more)."""
    for _ in range(50):
        await anyio.lowlevel.checkpoint()


async def download(resource: Resource, byte_range: ByteRange | None = None) -> bytes:
    assert isinstance(resource, RemoteFile)
    async with resource.opener.open(resource.url, byte_range) as body:
        return b"".join([chunk async for chunk in body.chunks])


async def read_stored(resource: Resource) -> bytes:
    assert isinstance(resource, StoredFile)
    return b"".join([chunk async for chunk in resource.store.read(resource.key, None)])


def temp_files(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "files" / TEMP_DIR).glob("*"))


def stored_blobs(tmp_path: Path) -> list[Path]:
    """Every committed blob, whatever its key."""
    root = tmp_path / "files"
    return [p for p in root.rglob("*") if p.is_file() and TEMP_DIR not in p.parts]


# --- pages -------------------------------------------------------------------


async def test_a_fresh_page_is_served_without_asking_again(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    first = await cache.get_project("demo", ANONYMOUS)
    clock.now += TTL - 1
    assert await cache.get_project("demo", ANONYMOUS) is first
    await settle()
    assert upstream.calls == 1


async def test_a_stale_page_is_served_at_once_and_revalidated_in_the_background(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    first = await cache.get_project("demo", ANONYMOUS)
    upstream.publish("demo", "demo-2.0.tar.gz", b"new")
    clock.now += TTL + 1
    assert await cache.get_project("demo", ANONYMOUS) is first  # stale, at once
    await eventually(lambda: upstream.calls == 2)
    await eventually(lambda: len(cache._pages["demo"].value.files) == 3)
    newer = await cache.get_project("demo", ANONYMOUS)
    assert "demo-2.0.tar.gz" in {f.filename for f in newer.files}
    assert await cache.get_project("demo", ANONYMOUS) is newer


async def test_an_unchanged_revalidation_keeps_the_same_object(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    first = await cache.get_project("demo", ANONYMOUS)
    clock.now += TTL + 1
    await cache.get_project("demo", ANONYMOUS)
    await eventually(lambda: upstream.calls == 2)
    await settle()
    assert await cache.get_project("demo", ANONYMOUS) is first
    assert upstream.calls == 2  # the revalidation made it fresh again


async def test_one_revalidation_per_page_at_a_time(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    first = await cache.get_project("demo", ANONYMOUS)
    clock.now += TTL + 1
    upstream.gate = anyio.Event()
    for _ in range(10):
        assert await cache.get_project("demo", ANONYMOUS) is first
        await settle()
    upstream.gate.set()
    await eventually(lambda: not cache._flights)
    assert upstream.calls == 2


async def test_concurrent_misses_make_one_upstream_request(
    cache: CacheRepository, upstream: MemoryUpstream
) -> None:
    upstream.gate = anyio.Event()
    results: list[ProjectDetail] = []

    async def ask() -> None:
        results.append(await cache.get_project("demo", ANONYMOUS))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(ask)
        await settle()
        upstream.gate.set()
    assert upstream.calls == 1
    assert len(results) == 10
    assert all(result is results[0] for result in results)


async def test_a_stale_page_is_served_while_the_upstream_fails(
    cache: CacheRepository,
    upstream: MemoryUpstream,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = await cache.get_project("demo", ANONYMOUS)
    upstream.down = True
    clock.now += TTL * 10
    with caplog.at_level(logging.WARNING, logger="packyard.repository.cache"):
        assert await cache.get_project("demo", ANONYMOUS) is first
        await eventually(lambda: upstream.calls == 2)
        await settle()
    assert "stale-if-error" in caplog.text
    assert "mem" in caplog.text
    # While failing, the upstream is not asked on every request, but again later.
    assert await cache.get_project("demo", ANONYMOUS) is first
    await settle()
    assert upstream.calls == 2
    clock.now += 31
    assert await cache.get_project("demo", ANONYMOUS) is first
    await eventually(lambda: upstream.calls == 3)


async def test_a_page_never_fetched_gives_the_upstream_error(
    cache: CacheRepository, upstream: MemoryUpstream
) -> None:
    upstream.down = True
    with pytest.raises(UpstreamUnavailable) as caught:
        await cache.get_project("demo", ANONYMOUS)
    assert caught.value.upstream == "mem"


async def test_not_found_is_remembered_briefly(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    for _ in range(3):
        with pytest.raises(ProjectNotFound):
            await cache.get_project("missing", ANONYMOUS)
    assert upstream.calls == 1
    clock.now += 61
    upstream.publish("missing", "missing-1.0.tar.gz", b"now it exists")
    detail = await cache.get_project("missing", ANONYMOUS)
    assert [f.filename for f in detail.files] == ["missing-1.0.tar.gz"]


@pytest.mark.parametrize("seconds", [5.0, 0.0])
async def test_how_long_not_found_is_remembered_is_the_upstreams_setting(
    make_cache: Callable[..., CacheRepository],
    upstream: MemoryUpstream,
    clock: Clock,
    seconds: float,
) -> None:
    cache = make_cache(not_found_ttl=seconds)
    for _ in range(2):
        with pytest.raises(ProjectNotFound):
            await cache.get_project("missing", ANONYMOUS)
    assert upstream.calls == (1 if seconds else 2)  # 0: never remembered
    upstream.publish("missing", "missing-1.0.tar.gz", b"now it exists")
    clock.now += seconds + 0.5

    detail = await cache.get_project("missing", ANONYMOUS)

    assert [f.filename for f in detail.files] == ["missing-1.0.tar.gz"]


async def test_a_project_gone_upstream_is_forgotten(
    cache: CacheRepository,
    make_cache: Callable[..., CacheRepository],
    upstream: MemoryUpstream,
    clock: Clock,
) -> None:
    await cache.get_project("demo", ANONYMOUS)
    del upstream.projects["demo"]
    clock.now += TTL + 1
    await cache.get_project("demo", ANONYMOUS)  # stale, while it is revalidated
    await eventually(lambda: "demo" not in cache._pages)
    with pytest.raises(ProjectNotFound):
        await cache.get_project("demo", ANONYMOUS)
    upstream.down = True
    await cache.settle()  # as shutting down does: the page is deleted in the background
    with pytest.raises(UpstreamUnavailable):  # not in the page store either
        await make_cache().get_project("demo", ANONYMOUS)


async def test_the_project_list_is_kept_and_served_stale(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    first = await cache.list_projects(ANONYMOUS)
    upstream.down = True
    clock.now += TTL + 1
    assert await cache.list_projects(ANONYMOUS) is first
    await settle()
    assert [entry.name for entry in first.projects] == ["demo"]


async def test_pages_survive_a_restart_and_keep_their_identity(
    cache: CacheRepository,
    make_cache: Callable[..., CacheRepository],
    upstream: MemoryUpstream,
    clock: Clock,
) -> None:
    before = await cache.get_project("demo", ANONYMOUS)
    projects = await cache.list_projects(ANONYMOUS)
    await cache.settle()  # as shutting down does: the pages are written in the background
    upstream.down = True
    restarted = make_cache()
    after = await restarted.get_project("demo", ANONYMOUS)
    assert after == before
    assert await restarted.list_projects(ANONYMOUS) == projects
    assert upstream.calls == 1  # still fresh: its fetch time was kept
    # Stale after the restart: the revalidated page equals the kept one, so
    # the very object read from disk stays.
    upstream.down = False
    clock.now += TTL + 1
    assert await restarted.get_project("demo", ANONYMOUS) is after
    await eventually(lambda: upstream.calls == 2)
    await settle()
    assert await restarted.get_project("demo", ANONYMOUS) is after


async def test_a_page_another_replica_kept_since_is_served_while_the_upstream_is_down(
    make_cache: Callable[..., CacheRepository], upstream: MemoryUpstream
) -> None:
    """A replica that looked at its page store before another kept the page (the
    shared store answers `has_project` from the names it read then) still
    serves it: when the upstream fails, the store is asked after all."""
    late = make_cache()
    with pytest.raises(ProjectNotFound):
        await late.get_project("missing", ANONYMOUS)  # it has looked at the store
    early = make_cache()
    page = await early.get_project("demo", ANONYMOUS)
    await early.settle()
    upstream.down = True
    assert await late.get_project("demo", ANONYMOUS) == page


async def test_a_page_is_served_before_it_is_written_and_written_in_the_background(
    cache: CacheRepository, pages: Callable[[], PageStore]
) -> None:
    page = await cache.get_project("demo", ANONYMOUS)
    await cache.settle()
    stored = await anyio.to_thread.run_sync(pages().load_project, "demo")
    assert stored is not None
    assert stored.value == page


async def test_a_page_that_cannot_be_written_is_still_served(
    make_cache: Callable[..., CacheRepository], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for folder in ("pages", "page-blobs"):  # whichever store this is
        (tmp_path / folder).write_bytes(b"a file where the folder must go")
    cache = make_cache()
    page = await cache.get_project("demo", ANONYMOUS)
    await cache.settle()
    assert page.name == "demo"
    assert "could not update the page cache" in caplog.text
    await cache.aclose()


# --- files -------------------------------------------------------------------


async def test_a_full_download_is_cached_and_then_served_from_disk(
    cache: CacheRepository, upstream: MemoryUpstream, tmp_path: Path
) -> None:
    remote = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    assert await download(remote) == CONTENT[WHEEL]
    stored = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(stored, StoredFile)
    assert stored.size == len(CONTENT[WHEEL])
    assert await read_stored(stored) == CONTENT[WHEEL]
    assert temp_files(tmp_path) == []


async def test_cached_files_are_served_while_the_upstream_is_down_after_a_restart(
    cache: CacheRepository, make_cache: Callable[..., CacheRepository], upstream: MemoryUpstream
) -> None:
    await download(await cache.get_file("demo", SDIST, ANONYMOUS))
    upstream.down = True
    restarted = make_cache()
    assert await read_stored(await restarted.get_file("demo", SDIST, ANONYMOUS)) == CONTENT[SDIST]


async def test_a_file_whose_hash_does_not_match_is_cut_off_and_never_cached(
    cache: CacheRepository,
    upstream: MemoryUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream.opener.corrupt = True
    received = bytearray()
    remote = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    with pytest.raises(UpstreamError, match="sha256"):  # noqa: PT012
        async with remote.opener.open(remote.url, None) as body:
            async for chunk in body.chunks:
                received += chunk
    assert len(received) < len(CONTENT[WHEEL])  # never the complete wrong file
    assert "not cached" in caplog.text
    assert isinstance(await cache.get_file("demo", WHEEL, ANONYMOUS), RemoteFile)
    assert temp_files(tmp_path) == []
    assert stored_blobs(tmp_path) == []


@pytest.mark.parametrize("how", ["disconnect", "upstream-cut"])
async def test_a_partial_download_is_never_cached(
    cache: CacheRepository, upstream: MemoryUpstream, tmp_path: Path, how: str
) -> None:
    remote = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    if how == "disconnect":  # the client read one chunk and went away
        async with remote.opener.open(remote.url, None) as body:
            await anext(body.chunks)
    else:
        upstream.opener.cut = True
        with pytest.raises(UpstreamUnavailable):
            await download(remote)
    assert isinstance(await cache.get_file("demo", WHEEL, ANONYMOUS), RemoteFile)
    assert temp_files(tmp_path) == []
    assert stored_blobs(tmp_path) == []


async def test_a_range_of_an_uncached_file_is_served_from_the_whole_file_cached_first(
    cache: CacheRepository, upstream: MemoryUpstream
) -> None:
    remote = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    assert await download(remote, ByteRange(2, 5)) == CONTENT[WHEEL][2:6]
    assert upstream.opener.opens == 1  # one whole download, no range passed through
    assert await read_stored(await cache.get_file("demo", WHEEL, ANONYMOUS)) == CONTENT[WHEEL]


async def test_a_range_of_a_file_whose_hash_does_not_match_is_refused(
    cache: CacheRepository, upstream: MemoryUpstream, tmp_path: Path
) -> None:
    upstream.opener.corrupt = True
    remote = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    with pytest.raises(UpstreamError, match="sha256"):
        await download(remote, ByteRange(0, 3))
    assert temp_files(tmp_path) == []
    assert stored_blobs(tmp_path) == []


async def test_concurrent_downloads_write_the_file_once(
    cache: CacheRepository, tmp_path: Path
) -> None:
    first = await cache.get_file("demo", WHEEL, ANONYMOUS)
    second = await cache.get_file("demo", WHEEL, ANONYMOUS)
    assert isinstance(first, RemoteFile)
    assert isinstance(second, RemoteFile)
    async with (
        first.opener.open(first.url, None) as one,
        second.opener.open(second.url, None) as two,
    ):
        assert len(temp_files(tmp_path)) == 1  # one tee writer; the other just streams
        assert b"".join([c async for c in two.chunks]) == CONTENT[WHEEL]
        assert b"".join([c async for c in one.chunks]) == CONTENT[WHEEL]
    assert await read_stored(await cache.get_file("demo", WHEEL, ANONYMOUS)) == CONTENT[WHEEL]


async def test_least_recently_used_files_are_evicted_past_the_limit(
    make_cache: Callable[..., CacheRepository], upstream: MemoryUpstream, clock: Clock
) -> None:
    names = ["a-1.0.tar.gz", "b-1.0.tar.gz", "c-1.0.tar.gz"]
    for name in names:
        upstream.publish("demo", name, name.encode() * 10)  # 120 bytes each
    cache = make_cache(max_bytes=250)

    async def fetch(filename: str) -> Resource:
        clock.now += 100  # past the interval at which a hit refreshes its access time
        return await cache.get_file("demo", filename, ANONYMOUS)

    await download(await fetch(names[0]))
    await download(await fetch(names[1]))
    assert isinstance(await fetch(names[0]), StoredFile)  # now b is the least recent
    await download(await fetch(names[2]))
    assert isinstance(await fetch(names[0]), StoredFile)
    assert isinstance(await fetch(names[1]), RemoteFile)  # evicted
    assert isinstance(await fetch(names[2]), StoredFile)
    assert await anyio.to_thread.run_sync(cache._files.index.total) == 240


async def test_a_cached_blob_removed_behind_our_back_is_fetched_again(
    cache: CacheRepository,
) -> None:
    await download(await cache.get_file("demo", SDIST, ANONYMOUS))
    stored = await cache.get_file("demo", SDIST, ANONYMOUS)
    assert isinstance(stored, StoredFile)
    await cache._files.store.delete(stored.key)
    assert isinstance(await cache.get_file("demo", SDIST, ANONYMOUS), RemoteFile)


async def test_aclose_cancels_background_revalidations(
    cache: CacheRepository, upstream: MemoryUpstream, clock: Clock
) -> None:
    await cache.get_project("demo", ANONYMOUS)
    clock.now += TTL + 1
    upstream.gate = anyio.Event()
    await cache.get_project("demo", ANONYMOUS)
    await settle()
    assert cache._flights
    await cache.aclose()
    assert not cache._flights


class DownStore:
    """A blob store that cannot be reached (an S3 outage): every call fails."""

    name = "s3://cache/down"

    def local_path(self, key: str) -> None:
        return None

    async def exists(self, key: str) -> bool:
        raise StoreUnavailable(self.name, "connection refused")

    def writer(self, filename: str) -> AbstractAsyncContextManager[BlobWriter]:
        raise StoreUnavailable(self.name, "connection refused")


async def test_while_the_file_caches_store_is_down_the_upstream_serves_the_file(
    cache: CacheRepository,
) -> None:
    """An outage of the store costs the cache, not the download: the file is
    streamed from the upstream, verified, and not kept."""
    await download(await cache.get_file("demo", SDIST, ANONYMOUS))
    cache._files.store = cast(BlobStore, DownStore())
    remote = await cache.get_file("demo", SDIST, ANONYMOUS)
    assert isinstance(remote, RemoteFile)
    assert await download(remote) == CONTENT[SDIST]
