"""`CacheRepository`: an upstream's pages and files, kept so CI works while it is down.

One `CacheRepository` wraps one `UpstreamRepository`, which fetches and
revalidates (ETag / Last-Modified, one request per project however many ask)
with a `page_ttl` of 0. The freshness window lives here, in one place:

- within `page_ttl` of its fetch, a kept page is served without asking;
- after that it is still served at once, and revalidated in the background,
  one revalidation per page at a time (RFC 5861 stale-while-revalidate);
- if the upstream fails, the kept page goes on being served and the failure is
  logged (RFC 5861 stale-if-error); the next attempt waits `ERROR_RETRY`;
- only a page never fetched gives the upstream's error (503 naming it);
- a 404 is remembered for the upstream's `not_found_ttl` (60 s by default, at
  most `page_ttl`; in memory only: after a restart the upstream is simply
  asked again), and forgets the kept page.

Pages and the project list persist in a `page_store.PageStore` (files in
the data directory, or the shared blob store and database when replicas
share them), written in the background in fetch order (no request waits for
the store; shutting down waits for the writes), and are read back lazily
after a restart, or by a replica that never fetched them. An unchanged page
stays the very same object (DESIGN §2 identity rule), even across a restart:
a revalidated page equal to the one read back is dropped in favour of it.

Files go through `file_cache.FileCache`: a verified cached copy is served from
our blob store, anything else streams from the upstream and is cached on the
way. Files are looked up on the kept page, so cached files of a kept page are
served while the upstream is down.

Background revalidations are asyncio tasks owned by this component (the
server runs on asyncio/uvloop, and the chain has no task group of its own);
`aclose` cancels them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import override

from packyard.errors import DatabaseUnavailable, ProjectNotFound, StorageFull, UpstreamError
from packyard.model import (
    ANONYMOUS,
    DistFile,
    ProjectDetail,
    ProjectList,
    RemoteOpener,
    RequestContext,
    Resource,
)
from packyard.repository.base import DelegatingRepository, Repository
from packyard.repository.file_cache import DownloadCheck, FileCache
from packyard.repository.page_store import FilesystemPageStore, PageStore
from packyard.repository.shared_page_store import SharedPageStore
from packyard.repository.upstream import UpstreamRepository, make_upstream_client, remote_file
from packyard.settings import CacheSettings, UpstreamSettings
from packyard.storage.base import BlobStore

logger = logging.getLogger(__name__)

ERROR_RETRY = 30.0
"""Seconds between revalidation attempts of a page while the upstream fails."""
MAX_REMEMBERED = 10_000
"""Pages kept in memory; the rest are read back from disk when asked for."""
_LIST = ""  # the flight key of the project list; page keys are "/" + name

T = TypeVar("T")


@dataclass(slots=True)
class _Kept(Generic[T]):
    """A page (or the list) as served, when it was fetched, and its files by name."""

    value: T
    fetched_at: float
    files: Mapping[str, DistFile] = field(default_factory=dict)
    retry_at: float = 0.0


class CacheRepository(DelegatingRepository):
    """Serves an upstream's pages and files from a cache kept in page and file stores.

    Args:
        source: the upstream (an `UpstreamRepository` with `page_ttl` 0).
        label: the upstream's name in messages.
        opener: streams the upstream's files (`UpstreamRepository.opener`).
        pages: where this upstream's pages are kept.
        files: the file cache, shared by every upstream.
        page_ttl: seconds a page is served without revalidation.
        not_found_ttl: seconds a 404 of the upstream is remembered (at most `page_ttl`).
        clock: wall-clock seconds (page fetch times survive a restart).
    """

    def __init__(
        self,
        source: Repository,
        *,
        label: str,
        opener: RemoteOpener,
        pages: PageStore,
        files: FileCache,
        page_ttl: float,
        not_found_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_remembered: int = MAX_REMEMBERED,
    ) -> None:
        super().__init__(source)
        self.label = label
        self._opener = opener
        self._store = pages
        self._files = files
        self._ttl = page_ttl
        self._negative_ttl = min(not_found_ttl, page_ttl)
        self._clock = clock
        self._max = max_remembered
        self._pages: OrderedDict[str, _Kept[ProjectDetail]] = OrderedDict()
        self._list: _Kept[ProjectList] | None = None
        self._negative: dict[str, float] = {}
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self._writes: list[Callable[[], None]] = []  # page-store writes not yet run
        self._writer: asyncio.Task[None] | None = None

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        """The upstream's project list, kept like a page.

        Raises:
            UpstreamError, UpstreamUnavailable: the list was never fetched and
                the upstream fails now.
        """
        kept = self._list or await self._load_list()
        if kept is None:
            return (await self._refresh(_LIST, self._fetch_list)).value
        self._revalidate_if_stale(_LIST, kept, self._fetch_list)
        return kept.value

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The kept page of `name`, revalidated as the module describes.

        Raises:
            ProjectNotFound: the upstream said 404/410 (remembered briefly).
            UpstreamError, UpstreamUnavailable: the page was never fetched and
                the upstream fails now.
        """
        return (await self._page(name)).value

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """A cached file from our blob store, else the upstream's, cached on the way.

        A file cache that cannot be asked (its store, or for a store not on this
        machine the database, is down) counts as a miss:
        the upstream, if it answers, still serves the file, verified as it
        streams, unless the file must be kept to be checked (a wheel whose
        METADATA was read by ranges): that one is refused before any byte.

        Raises:
            ProjectNotFound, UpstreamError, UpstreamUnavailable: as `get_project`.
            FileNotFound: the kept page lists no such file (or no metadata for it).
            StoreUnavailable: the file cache's store is down and the file must be kept.
        """
        page = await self._page(name)
        resource = remote_file(page.files, name, filename, self._opener, self.label)
        try:
            cached = await self._files.lookup(resource)
        except (OSError, DatabaseUnavailable) as exc:  # StoreUnavailable is an OSError
            if await self._files.must_keep(resource):
                raise
            if not isinstance(exc, DatabaseUnavailable):  # that one is in the fault log
                logger.warning(
                    "file cache unavailable, %s comes from the upstream: %s", filename, exc
                )
            cached = None
        return cached if cached is not None else self._files.tee(resource)

    @override
    async def aclose(self) -> None:
        flights = list(self._flights.values())
        for task in flights:
            task.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        await self.settle()
        await super().aclose()

    # --- serving kept pages ----------------------------------------------------

    async def _page(self, name: str) -> _Kept[ProjectDetail]:
        expires = self._negative.get(name)
        if expires is not None:
            if self._clock() < expires:
                raise ProjectNotFound(name)
            del self._negative[name]
        kept = self._pages.get(name)
        if kept is not None:
            self._pages.move_to_end(name)
        else:
            kept = await self._load_page(name)
        fetch = partial(self._fetch_page, name)
        if kept is None:
            return await self._refresh("/" + name, fetch)
        self._revalidate_if_stale("/" + name, kept, fetch)
        return kept

    def _revalidate_if_stale(
        self, key: str, kept: _Kept[Any], fetch: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        now = self._clock()
        if now - kept.fetched_at < self._ttl or now < kept.retry_at or key in self._flights:
            return
        self._flight(key, fetch)

    async def _refresh(self, key: str, fetch: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Wait for the one fetch of `key`; shielded, so a caller that goes away
        does not cancel it for the others."""
        return cast(T, await asyncio.shield(self._flight(key, fetch)))

    def _flight(self, key: str, fetch: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
        """The running fetch of `key`, started if there is none."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(fetch())
            self._flights[key] = task
            task.add_done_callback(partial(self._landed, key))
        return task

    def _landed(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: fetches log their own failures

    # --- fetching --------------------------------------------------------------

    async def _fetch_page(self, name: str) -> _Kept[ProjectDetail]:
        """Ask the upstream for `name` and keep the answer.

        Raises:
            ProjectNotFound: the upstream has no such project (the kept page is dropped).
            UpstreamError, UpstreamUnavailable: the upstream failed (and, for a
                page not in memory, the page store has none either).
        """
        kept = self._pages.get(name)
        try:
            detail = await self.source.get_project(name, ANONYMOUS)
        except ProjectNotFound:
            await self._forget(name)
            raise
        except UpstreamError as exc:
            # A page never seen here may have been kept by another replica since
            # this one last looked (`PageStore.has_project`): serve that instead.
            fallback = None if kept is not None else await self._load_page(name, ask_store=True)
            self._failed(kept or fallback, exc, f"the page of {name!r}")
            if fallback is None:
                raise
            return fallback
        now = self._clock()
        if kept is not None and (kept.value is detail or kept.value == detail):
            kept.fetched_at, kept.retry_at = now, 0.0
            self._persist(self._store.touch, name, now)
            return kept
        kept = _Kept(detail, now, {dist.filename: dist for dist in detail.files})
        self._remember(name, kept)
        self._persist(self._store.save_project, name, detail, now)
        return kept

    async def _fetch_list(self) -> _Kept[ProjectList]:
        """Ask the upstream for its project list and keep it.

        Raises:
            UpstreamError, UpstreamUnavailable: the upstream failed.
        """
        kept = self._list
        try:
            projects = await self.source.list_projects(ANONYMOUS)
        except UpstreamError as exc:
            self._failed(kept, exc, "the project list")
            raise
        now = self._clock()
        if kept is not None and (kept.value is projects or kept.value == projects):
            kept.fetched_at, kept.retry_at = now, 0.0
            self._persist(self._store.touch, None, now)
            return kept
        self._list = kept = _Kept(projects, now)
        self._persist(self._store.save_list, projects, now)
        return kept

    def _failed(self, kept: _Kept[Any] | None, exc: UpstreamError, what: str) -> None:
        if kept is None:
            return  # nothing to fall back on: the caller gets the error
        kept.retry_at = self._clock() + ERROR_RETRY
        logger.warning(
            "%s; serving %s kept from %.0f s ago (stale-if-error)",
            exc.message,
            what,
            self._clock() - kept.fetched_at,
        )

    async def _forget(self, name: str) -> None:
        self._pages.pop(name, None)
        if len(self._negative) >= self._max:
            now = self._clock()
            self._negative = {n: t for n, t in self._negative.items() if t > now}
        self._negative[name] = self._clock() + self._negative_ttl
        self._persist(self._store.delete_project, name)

    # --- memory and disk -------------------------------------------------------

    def _remember(self, name: str, kept: _Kept[ProjectDetail]) -> None:
        self._pages[name] = kept
        self._pages.move_to_end(name)
        while len(self._pages) > self._max:
            self._pages.popitem(last=False)

    async def _load_page(
        self, name: str, *, ask_store: bool = False
    ) -> _Kept[ProjectDetail] | None:
        # A page never fetched, the common case on a cold cache, costs one
        # `stat` (or a set lookup) on the event loop rather than a worker-thread
        # hop: see `PageStore.has_project`. `ask_store`: load it regardless.
        if not ask_store and not self._store.has_project(name):
            return None
        stored = await anyio.to_thread.run_sync(self._store.load_project, name)
        # Another request may have loaded or fetched it meanwhile: keep one object
        # (and start no second fetch of a page that has just landed).
        existing = self._pages.get(name)
        if existing is not None:
            return existing
        if stored is None:
            return None
        detail = stored.value
        kept = _Kept(detail, stored.fetched_at, {dist.filename: dist for dist in detail.files})
        self._remember(name, kept)
        return kept

    async def _load_list(self) -> _Kept[ProjectList] | None:
        stored = await anyio.to_thread.run_sync(self._store.load_list)
        if stored is None:
            return None
        if self._list is None:
            self._list = _Kept(stored.value, stored.fetched_at)
        return self._list

    def _persist(self, write: Callable[..., None], *args: Any) -> None:
        """Queue a page-store write; the page is served from memory meanwhile.

        The writes run in order, in a background task, as many as have queued
        up in one worker-thread hop: a burst of cold pages costs one hop, and
        no request waits for the disk. A failure is logged, not raised.
        """
        self._writes.append(partial(write, *args))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def settle(self) -> None:
        """Wait until every queued page-store write is done."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_queued(self) -> None:
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                await anyio.to_thread.run_sync(self._write_batch, batch)
        finally:
            self._writer = None

    def _write_batch(self, batch: list[Callable[[], None]]) -> None:
        for write in batch:
            try:
                write()
            except (StorageFull, DatabaseUnavailable):
                pass  # in the fault log already; the page is served from memory
            except (OSError, ValueError, SQLAlchemyError) as exc:
                logger.error("could not update the page cache of %s: %s", self.label, exc)


def build_file_cache(
    sessions: sessionmaker[Session],
    store: BlobStore,
    settings: CacheSettings,
    check: DownloadCheck | None = None,
) -> FileCache:
    """The file cache: blobs in `store`, their LRU in the database of `sessions`.

    `store` must be a store of its own, apart from the in-house blobs (e.g.
    `<data_dir>/cache/files`, or a prefix of its own in the bucket), so that
    eviction can never delete a file the database refers to. `check` runs on
    complete downloads before their last byte is sent (`file_cache.py`).
    """
    return FileCache(sessions, store, settings.max_file_bytes, check=check)


def page_store_for(
    settings: UpstreamSettings,
    *,
    pages_dir: Path | None,
    sessions: sessionmaker[Session],
    store: BlobStore,
) -> PageStore:
    """Where the pages of the upstream `settings` are kept.

    With `pages_dir` (storage is the local filesystem: `<data_dir>/cache/pages`),
    in files under `<pages_dir>/<upstream_slug>/`: a never-fetched page costs
    a `stat`. Without, shared by every replica: blobs in `store` (a store, or
    a bucket prefix, of the page cache's own) and rows in the database.
    """
    slug = upstream_slug(settings)
    if pages_dir is not None:
        return FilesystemPageStore(pages_dir / slug)
    return SharedPageStore(sessions, store, slug)


def cached_upstream(
    settings: UpstreamSettings, pages: PageStore, files: FileCache
) -> CacheRepository:
    """`settings`' upstream behind a `CacheRepository` that keeps its pages in `pages`
    (see `page_store_for`) and its files in `files`; the upstream itself
    revalidates always."""
    fetcher = UpstreamRepository(
        settings.model_copy(update={"page_ttl": 0.0}), make_upstream_client(settings)
    )
    return CacheRepository(
        fetcher,
        label=settings.label,
        opener=fetcher.opener,
        pages=pages,
        files=files,
        page_ttl=settings.page_ttl,
        not_found_ttl=settings.not_found_ttl,
    )


def upstream_slug(settings: UpstreamSettings) -> str:
    """A name for one upstream's pages (a directory, or the `upstream` of their rows):
    readable, and unique per URL (the URL itself may hold credentials, so only
    its hash is used)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", settings.label).strip("-")[:48] or "upstream"
    return f"{readable}-{hashlib.sha256(settings.url.encode()).hexdigest()[:12]}"
