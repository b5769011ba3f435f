"""`FileCache`: upstream files kept in a blob store, filled while clients download.

A file of an upstream page with a sha256 is looked up by its content-addressed
key (`blob_key(sha256, filename)`). On a miss, the `RemoteFile` handed to the
files route gets a teeing opener: the first full download streams to the
client *and* into a blob writer; at the end the bytes are checked against the
page's sha256 (and size) and only then committed. The last chunk is held back
until that check passed, so a client never receives a complete-looking file
whose hash is wrong: on a mismatch the transfer is cut (the route aborts the
connection), an `upstream-file-mismatch` event is logged, and nothing is
cached. A client that goes away, or an upstream that breaks off, never
completes a stream, so the writer is aborted and no partial file is ever
visible.

Only one tee writer per file at a time in this process; concurrent downloads
of the same file stream (and are checked) without writing. A wheel whose
METADATA was read earlier by ranges (`check`, the `RemoteMetadataReader`) is
the exception: each of its downloads keeps a copy, which is committed and
read back before the last chunk is sent, so that its real METADATA can be
compared with the copy clients resolved with; a mismatch cuts the transfer
(and the blob is deleted), as a wrong sha256 does.

A full disk (`StorageFull`, reported to the fault log) stops the caching of a
download, never the download: the client gets its bytes, verified, and the
next download tries again. Only a file that must be kept to be served cannot
be: a byte range of an uncached file (below) and a wheel that must be read
back to be checked. Those are refused with a 507 before any byte when the
store has no room for their size (`storage.full.check_room`), and cut off if
the disk fills while they stream.

A byte range of an uncached file is never passed through from the upstream:
bytes of a part of a file cannot be verified. The whole file is downloaded
into the cache first (once, however many ask), verified as above, and the
range is then served from the cached blob. (Only for clients: the METADATA
reader reads parts of wheels straight from the upstream, `parts_opener`, since
what it reads is keyed and checked against the whole wheel later.)

The index is the table `cached_files` of the main database (key, size, last
access, evictable), so every replica shares one LRU and one eviction (DESIGN
§3). Distribution files are evicted least recently used first once they
exceed `max_bytes`; `.metadata` files are small and kept.

Several replicas, one cache: a blob is committed before its row is written,
and on eviction the row is deleted (and committed) before the blob, by the
replica whose DELETE removed it. So a row whose blob is gone can only exist
for the moment between the two steps, or after a blob was removed behind our
back; a lookup checks that the blob exists (a `stat`, or the store's
`exists`) and fetches the file again if not. A replica may be serving a blob
that another one evicts: on S3 a GET in flight completes; on a shared
filesystem the open file stays readable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

import anyio
import anyio.to_thread
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import CachedFile, upsert
from packyard.dists.remote_zip import RangeReader
from packyard.errors import DatabaseUnavailable, StorageFull, StoreUnavailable, UpstreamError
from packyard.flights import Flights
from packyard.model import ByteRange, RemoteBody, RemoteFile, RemoteOpener, StoredFile
from packyard.repository import upstream_events
from packyard.storage.base import BlobStore, BlobWriter, InvalidBlobKey, StoredBlob, blob_key
from packyard.storage.full import check_room

logger = logging.getLogger(__name__)

# A hit refreshes its last-access time at most this often: LRU needs no more
# precision, and it spares a database write per download of a popular file.
TOUCH_INTERVAL = 60.0


class DownloadCheck(Protocol):
    """A check of a complete, sha256-verified download before its last byte is sent."""

    async def applies(self, resource: RemoteFile) -> bool:
        """Whether `check` has anything to compare for `resource`."""
        ...

    async def check(self, resource: RemoteFile, read: RangeReader, size: int) -> None:
        """Check the file whose bytes `read` reads.

        Raises:
            UpstreamError: the file must not be served.
        """
        ...


class FileIndex:
    """The table `cached_files`: blocking calls, run in worker threads.

    No call reads and then writes in one transaction: on SQLite a read
    transaction that turns into a write fails at once if another connection
    wrote meanwhile, so each write is one statement of its own.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def hit(self, key: str, now: float) -> int | None:
        """The size recorded for `key` (refreshing its last access), or None."""
        with self._sessions() as session:
            row = session.execute(
                select(CachedFile.size, CachedFile.last_access).where(CachedFile.key == key)
            ).one_or_none()
            if row is None:
                return None
            session.commit()  # ends the read: the update below is a transaction of its own
            if row.last_access < now - TOUCH_INTERVAL:
                session.execute(
                    update(CachedFile).where(CachedFile.key == key).values(last_access=now)
                )
                session.commit()
            return int(row.size)

    def record(self, key: str, size: int, evictable: bool, now: float) -> None:
        with self._sessions.begin() as session:
            insert = upsert(session, CachedFile).values(
                key=key, size=size, last_access=now, evictable=evictable
            )
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["key"], set_={"last_access": insert.excluded.last_access}
                )
            )

    def forget(self, key: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(CachedFile).where(CachedFile.key == key))

    def take_victims(self, max_bytes: int) -> list[str]:
        """Remove the rows of the least recently used evictable files past `max_bytes`,
        and return the keys of the rows removed by this call.

        The most recently used files are kept while their running total fits;
        every older one goes (the same set as evicting oldest first until the
        rest fits). One DELETE statement decides and removes: replicas
        evicting at once pick the same victims, and each key is returned to
        the one whose DELETE removed its row, which then deletes the blob.
        """
        if self.total() <= max_bytes:
            return []  # the common case: a read, no write lock
        newest_first = (CachedFile.last_access.desc(), CachedFile.key.desc())
        ranked = (
            select(
                CachedFile.key,
                func.sum(CachedFile.size)
                .over(order_by=newest_first, rows=(None, 0))
                .label("running"),
            )
            .where(CachedFile.evictable.is_(True))
            .subquery()
        )
        victims = select(ranked.c.key).where(ranked.c.running > max_bytes)
        with self._sessions.begin() as session:
            removed = session.execute(
                delete(CachedFile).where(CachedFile.key.in_(victims)).returning(CachedFile.key)
            )
            return list(removed.scalars())

    def total(self) -> int:
        """Bytes of evictable files recorded."""
        with self._sessions() as session:
            total = session.scalar(
                select(func.coalesce(func.sum(CachedFile.size), 0)).where(
                    CachedFile.evictable.is_(True)
                )
            )
            return int(total or 0)


class FileCache:
    """Upstream files in `store`, indexed in the database of `sessions`, bounded by `max_bytes`.

    `store` must be a store of its own, apart from the in-house blobs, so
    that eviction can never delete a file the database refers to. Built once
    in `compose.py` and shared by every upstream's `CacheRepository`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        max_bytes: int,
        *,
        clock: Callable[[], float] = time.time,
        check: DownloadCheck | None = None,
    ) -> None:
        """`check`, if given, is run on every complete download it `applies` to."""
        self.store = store
        self.index = FileIndex(sessions)
        self.max_bytes = max_bytes
        self.check = check
        self._clock = clock
        self._writing: set[str] = set()
        self._fills: Flights[str, StoredFile] = Flights()

    async def lookup(self, resource: RemoteFile) -> StoredFile | None:
        """The cached copy of `resource`, or None (no sha256, not cached, or gone).

        A blob on the local filesystem is served even while the database does
        not answer (it is checked by its content-addressed key when it is written).

        Raises:
            sqlalchemy.exc.SQLAlchemyError, OSError: the index or the store cannot be read.
        """
        key = _key(resource)
        if key is None:
            return None
        path = self.store.local_path(key)
        # A miss, the common case on a cold cache, costs one `stat` on the
        # event loop: cheaper than the worker-thread hop of an index query.
        if path is not None and not path.is_file():
            return None
        try:
            size = await anyio.to_thread.run_sync(self.index.hit, key, self._clock())
        except DatabaseUnavailable:
            if path is None:
                raise
            # The blob is here and its key is its sha256: it is served as it is,
            # its last use not recorded, while the database does not answer.
            return self._stored(resource, key, path.stat().st_size)
        if size is None:
            return None
        if path is None and not await self.store.exists(key):  # removed behind our back
            await anyio.to_thread.run_sync(self.index.forget, key)
            return None
        return self._stored(resource, key, size)

    def _stored(self, resource: RemoteFile, key: str, size: int) -> StoredFile:
        assert resource.sha256 is not None  # it has a key
        return StoredFile(
            filename=resource.filename,
            key=key,
            size=size,
            sha256=resource.sha256.lower(),
            store=self.store,
            content_type=resource.content_type,
            modified=resource.modified,
        )

    async def fill(self, resource: RemoteFile, key: str, opener: RemoteOpener) -> StoredFile:
        """The file cached: downloaded whole through `opener`, verified and committed
        (once for all concurrent callers), unless it is cached already. Not
        evicted yet: the caller serves from it, then calls `evict`.

        Raises:
            UpstreamError: the bytes do not match the page (or fail `check`).
            UpstreamUnavailable, FileNotFound: the upstream failed, or has no such file.
            StorageFull: the store has no room for the file (before it is fetched
                when the page gives its size).
            StoreUnavailable: the file could not be kept, so it cannot be served in parts.
        """
        return await self._fills.run(key, lambda: self._fill(resource, key, opener))

    async def _fill(self, resource: RemoteFile, key: str, opener: RemoteOpener) -> StoredFile:
        try:
            cached = await self.lookup(resource)
            if cached is not None:
                return cached
            if resource.size is not None:
                check_room(self.store, resource.filename, resource.size)
            async with (
                opener.open(resource.url, None) as body,
                self.store.writer(resource.filename) as writer,
            ):
                tee = _Tee(self, resource, body.chunks, writer, await self._checks(resource))
                async for _ in tee.chunks():
                    pass
                if tee.writer is None:
                    raise tee.failure or OSError("writing it failed")
                blob = await self._commit(tee.writer, tee.blob, resource, evict=False)
        except StorageFull:
            raise
        except (OSError, SQLAlchemyError) as exc:
            name = str(getattr(self.store, "name", "") or "of the file cache")
            raise StoreUnavailable(
                name, f"cannot keep {resource.filename}, so it cannot serve a part of it ({exc})"
            ) from exc
        return self._stored(resource, blob.key, blob.size)

    async def _checks(self, resource: RemoteFile) -> DownloadCheck | None:
        """`check`, if it applies to `resource`."""
        if self.check is not None and await self.check.applies(resource):
            return self.check
        return None

    async def must_keep(self, resource: RemoteFile) -> bool:
        """Whether a download of `resource` can be served only once kept: its
        check reads the kept copy back (so not while the store is down)."""
        return await self._checks(resource) is not None

    def tee(self, resource: RemoteFile) -> RemoteFile:
        """`resource` with an opener that caches a complete, verified download.

        A file whose page gives no sha256 cannot be verified, so it is only
        streamed, never cached.
        """
        key = _key(resource)
        if key is None:
            return resource
        return dataclasses.replace(resource, opener=_TeeOpener(self, resource, key))

    async def evict(self) -> int:
        """Delete least recently used files until the total fits; how many went.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the index could not be updated.
        """
        victims = await anyio.to_thread.run_sync(self.index.take_victims, self.max_bytes)
        for key in victims:
            try:
                await self.store.delete(key)
            except OSError as exc:  # the row is gone: the blob is merely orphaned
                logger.warning("could not delete the evicted cached file %s: %s", key, exc)
        if victims:
            logger.info("evicted %d cached upstream files (LRU)", len(victims))
        return len(victims)

    def _claim(self, key: str) -> bool:
        if key in self._writing:
            return False
        self._writing.add(key)
        return True

    def _release(self, key: str) -> None:
        self._writing.discard(key)

    async def _commit(
        self,
        writer: BlobWriter,
        blob: StoredBlob | None,
        resource: RemoteFile,
        *,
        evict: bool = True,
    ) -> StoredBlob:
        """Store a verified download (`blob`: committed already) and make room.

        Raises:
            OSError, sqlalchemy.exc.SQLAlchemyError: the blob or its row could not be written.
        """
        # Shielded: a cancelled request must not leave a blob that no row records.
        with anyio.CancelScope(shield=True):
            committed = blob if blob is not None else await writer.commit()
            evictable = not resource.filename.endswith(".metadata")
            await anyio.to_thread.run_sync(
                self.index.record, committed.key, committed.size, evictable, self._clock()
            )
            if evict:
                await self.evict()
        return committed

    async def _keep(
        self, writer: BlobWriter, blob: StoredBlob | None, resource: RemoteFile
    ) -> None:
        """`_commit`, with failures logged, not raised: the client already has its bytes."""
        try:
            await self._commit(writer, blob, resource)
        except (StorageFull, DatabaseUnavailable):
            pass  # in the fault log already, once per interval rather than once per file
        except (OSError, SQLAlchemyError) as exc:
            logger.error("could not cache %s from %s: %s", resource.filename, resource.url, exc)


def parts_opener(resource: RemoteFile) -> RemoteOpener:
    """The upstream's own opener of `resource`: byte ranges straight from the
    upstream, unverified, for a reader that checks what it read in another way
    (`remote_metadata.py`); `resource.opener` itself, if it was not teed."""
    opener = resource.opener
    return opener.inner if isinstance(opener, _TeeOpener) else opener


class _TeeOpener:
    """The `RemoteOpener` of an uncached file: streams, verifies and caches."""

    def __init__(self, cache: FileCache, resource: RemoteFile, key: str) -> None:
        self._cache = cache
        self._resource = resource
        self._key = key
        self.inner: RemoteOpener = resource.opener

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        """See `model.RemoteOpener.open`. A full download's chunks also raise
        UpstreamError when the bytes do not match the page's sha256 or size,
        or fail the cache's `check`.

        A range is read from the cache, which is filled first (see the module
        docstring); entering then raises what `FileCache.fill` raises."""
        if byte_range is not None:
            stored = await self._cache.fill(self._resource, self._key, self.inner)
            try:
                yield RemoteBody(stored.size, stored.store.read(stored.key, byte_range))
            finally:
                await self._evict()
            return
        async with AsyncExitStack() as stack:
            check = await self._cache._checks(self._resource)
            if check is not None and self._resource.size is not None:
                # It is served only once kept and read back: refused now, before
                # the upstream is asked, rather than cut off when the disk fills.
                check_room(self._cache.store, self._resource.filename, self._resource.size)
            body = await stack.enter_async_context(self.inner.open(url, None))
            writer = await self._writer(stack, must=check is not None)
            tee = _Tee(self._cache, self._resource, body.chunks, writer, check)
            yield RemoteBody(body.size, tee.chunks())
            if tee.complete and tee.writer is not None:
                await self._cache._keep(tee.writer, tee.blob, self._resource)

    async def _evict(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self._cache.evict()
            except DatabaseUnavailable:
                pass  # in the fault log; evicted once the database is back
            except (OSError, SQLAlchemyError) as exc:
                logger.error("could not evict cached files: %s", exc)

    async def _writer(self, stack: AsyncExitStack, *, must: bool) -> BlobWriter | None:
        """A blob writer, if no other download of this file is writing one (or if
        the download `must` keep a copy, to check it)."""
        if self._cache._claim(self._key):
            stack.callback(self._cache._release, self._key)
        elif not must:
            return None
        try:
            return await stack.enter_async_context(
                self._cache.store.writer(self._resource.filename)
            )
        except OSError as exc:
            if must:
                raise  # before any byte: the file is served only if kept
            if not isinstance(exc, StorageFull):  # that one is in the fault log
                logger.warning("cannot cache %s: %s", self._resource.filename, exc)
            return None


class _Tee:
    """Copies a full-file stream into a writer, checking sha256 and size at the end,
    then `check` (which needs the writer: it reads the committed blob back)."""

    def __init__(
        self,
        cache: FileCache,
        resource: RemoteFile,
        source: AsyncIterator[bytes],
        writer: BlobWriter | None,
        check: DownloadCheck | None = None,
    ) -> None:
        self._cache = cache
        self._resource = resource
        self._source = source
        self._check_download = check
        self.writer = writer
        self.blob: StoredBlob | None = None
        self.complete = False
        self.failure: OSError | None = None  # why the writer was dropped, if it was

    async def chunks(self) -> AsyncIterator[bytes]:
        """The source's chunks, one behind, so the last one is sent only if the file is right.

        Raises:
            UpstreamError: the bytes do not match the page's sha256 or size, or
                fail the check.
            UpstreamUnavailable: the upstream broke off (from the source).
            StoreUnavailable: a file to check could not be kept to be read back.
        """
        digest, size, held = hashlib.sha256(), 0, b""
        async for chunk in self._source:
            if not chunk:
                continue
            digest.update(chunk)
            size += len(chunk)
            await self._write(chunk)
            if held:
                yield held
            held = chunk
        self._check(digest.hexdigest(), size)
        if self._check_download is not None:
            await self._checked(self._check_download, size)
        self.complete = True
        if held:
            yield held

    async def _write(self, chunk: bytes) -> None:
        if self.writer is None:
            return
        try:
            await self.writer.write(chunk)
        except OSError as exc:  # e.g. disk full: keep serving, stop caching
            if not isinstance(exc, StorageFull):  # that one is in the fault log
                logger.warning("stopped caching %s: %s", self._resource.filename, exc)
            await self.writer.abort()
            self.writer, self.failure = None, exc

    async def _checked(self, check: DownloadCheck, size: int) -> None:
        """Commit the blob and run `check` on it; on a failure the blob is deleted."""
        store = self._cache.store
        if self.writer is None:
            if isinstance(self.failure, StorageFull):
                raise self.failure
            name = str(getattr(store, "name", "") or "of the file cache")
            raise StoreUnavailable(name, f"cannot keep {self._resource.filename} to check it")
        with anyio.CancelScope(shield=True):
            self.blob = blob = await self.writer.commit()

        async def read(start: int, end: int) -> bytes:
            chunks = store.read(blob.key, ByteRange(start, end - 1))
            return b"".join([chunk async for chunk in chunks])

        try:
            await check.check(self._resource, read, size)
        except BaseException:
            with anyio.CancelScope(shield=True):
                self.writer, self.blob = None, None
                await store.delete(blob.key)
            raise

    def _check(self, sha256: str, size: int) -> None:
        resource = self._resource
        expected_size = resource.size
        if sha256 == (resource.sha256 or "").lower() and expected_size in (None, size):
            return
        logger.error(
            "upstream %s sent %s (%d bytes, sha256 %s) but its page says sha256 %s, size %s:"
            " not cached, transfer cut off",
            resource.upstream,
            resource.url,
            size,
            sha256,
            resource.sha256,
            expected_size,
        )
        upstream_events.emit(
            "upstream-file-mismatch",
            resource.upstream,
            filename=resource.filename,
            reason=f"{size} bytes with sha256 {sha256}; its page says sha256 "
            f"{resource.sha256}, size {expected_size}",
        )
        raise UpstreamError(
            resource.upstream,
            f"sent {resource.filename} with sha256 {sha256}, but its index page says "
            f"{resource.sha256}; the file was not served or cached",
        )


def _key(resource: RemoteFile) -> str | None:
    """The blob key of a file with a valid sha256 and filename, else None."""
    if resource.sha256 is None:
        return None
    try:
        return blob_key(resource.sha256.lower(), resource.filename)
    except InvalidBlobKey:
        return None
