"""Replica-local copies of S3 blobs: a bounded, read-through cache on the replica's disk.

Why. A download served from S3 runs at the object store's pace; a copy on the
replica's own disk is read as fast as the filesystem store reads its blobs
(bench/RESULTS.md, "Scale-out"). A production repository does the same in front
of S3 (Artifactory's cache-fs).

Why it is safe. Keys are content-addressed (`blob_key`: `ab/cd/<sha256>/<name>`),
so a copy is checked once, when it is filled, against the sha256 its key names,
and can never go stale. Nothing else lives here: a replica started with an empty
directory serves everything from S3 and fills its copies as downloads come, and
removing the directory at any moment loses nothing. A blob whose key names no
sha256 is never copied.

Filling. A whole read that misses streams from S3 to its caller and, on the
way, into a temporary file under `.tmp/`, which is renamed into place only if
every byte arrived and their sha256 is the key's. Each batch of bytes is written
(in a worker thread) while the next comes from S3; the last batch is passed on
only once the copy is done: a client goes as soon as it has every byte.
A reader that stops early (a client gone), a mismatch (logged), a full disk
(logged) or a blob larger than a quarter of the bound abandon the copy, never
the read. Ranged reads of a missing copy go to S3 and fill nothing. Blobs
written here are not copied: a copy is made by the replica that serves the
blob, when it first does.

Bound. Worker processes share one data directory, so the filesystem is the only
bookkeeping: a copy's mtime is its last use (touched on every hit; atime is
unreliable under noatime/relatime), and each process keeps an estimate of the
total (its last scan plus its own fills). After a fill that takes the estimate
past the bound, or `SCAN_INTERVAL` after the last scan, a scan of the directory
removes the least recently used copies until the total is below `LOW_WATER` of
the bound, and temporary files left by a crash (`STALE_TEMP` without a write).

Crashes. Copies are not fsynced: a process that dies (even by SIGKILL) loses
nothing the kernel was given, and a rename publishes a copy only after its last
byte was written. Only a crash of the machine can tear a copy, so copies live
under the kernel's boot id (`<root>/<boot id>/<area>/<key>`) and those of an
earlier boot are never read, and removed by the first scan. Where there is no
boot id to read (not Linux), each copy is fsynced before its rename instead.

Vanishing copies. Another process may evict a copy at any moment. `read` opens
the copy before its first byte, and an open file stays readable after it is
unlinked; a copy gone before that is read from S3. A path from `local_path` is
touched as it is handed out, and the scan re-checks each copy's mtime just
before removing it, skipping one used since the scan began: a caller that opens
the path itself (pathsend, the upload's archive check) loses it only if an
eviction runs at that very microsecond.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from packyard.model import ByteRange
from packyard.storage.base import BlobWriter, StoredBlob
from packyard.storage.filesystem import FilesystemBlobStore
from packyard.storage.s3 import S3BlobStore

logger = logging.getLogger(__name__)

COPIES_DIR = "blob-copies"  # under the data directory
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # new at every boot (Linux)
TEMP_DIR = ".tmp"  # areas and keys never start with a dot, so this never clashes
SCAN_INTERVAL = 30.0  # seconds: how stale a process's view of the others' fills may get
STALE_TEMP = 600.0  # seconds without a write after which a temporary file is a crash's
LOW_WATER = 0.9  # a scan evicts down to this share of the bound: not one scan per fill
LARGEST_SHARE = 4  # a blob over bound / this is not copied: it would evict too much
WRITE_BATCH = 2 * 1024 * 1024  # bytes read from S3 while the previous batch is written
# `ab/cd/<sha256>/<name>` whose first four digits repeat the digest's (`blob_key`).
_CONTENT_KEY = re.compile(
    r"(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<sha>(?P=a)(?P=b)[0-9a-f]{60})/[^/]+"
)


class LocalCopies:
    """The directory of copies, bounded to `max_bytes`; shared by the copied stores
    of a process (one per area), and with other processes on the same directory.

    Args:
        directory: where copies live, one subdirectory per boot (made when the
            first copy is).
        max_bytes: the bound (> 0); a blob over a quarter of it is not copied.
        boot_id: this boot's name (`kernel_boot_id()`); None if there is none,
            and then copies are fsynced.
    """

    def __init__(self, directory: Path, max_bytes: int, *, boot_id: str | None) -> None:
        self.directory = Path(directory).absolute()
        self.root = self.directory / (boot_id or "any-boot")  # this boot's copies
        self.durable = boot_id is None
        self.max_bytes = max_bytes
        self.max_blob = max_bytes // LARGEST_SHARE
        self._estimate = 0
        self._scanned_at: float | None = None

    def touch(self, path: Path) -> bool:
        """Mark the copy at `path` used now; False if there is none (or it can't be)."""
        try:
            os.utime(path)
        except OSError:
            return False
        return True

    def open_temp(self) -> tuple[BinaryIO, Path]:
        """A new temporary file beside the copies (same file system: atomic renames).

        Raises:
            OSError: it could not be created.
        """
        temp_dir = self.root / TEMP_DIR
        temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=temp_dir, suffix=".part")
        return os.fdopen(fd, "wb"), Path(name)

    def added(self, size: int) -> bool:
        """Count a new copy of `size` bytes; True if a scan is due."""
        self._estimate += size
        if self._estimate > self.max_bytes or self._scanned_at is None:
            return True
        return time.monotonic() - self._scanned_at > SCAN_INTERVAL

    async def evict(self) -> None:
        """`scan` in a worker thread, to its end even if the caller is cancelled.
        Never raises: a failure is logged, and the next scan tries again."""
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self.scan)
            except OSError as error:
                logger.warning("could not evict local copies in %s: %s", self.root, error)

    def scan(self) -> int:
        """Evict least recently used copies until below `LOW_WATER` of the bound, and
        remove crashed fills' temporary files. Blocking: run it in a worker thread.

        Returns the bytes of copies kept.
        """
        if self._scanned_at is None:
            _remove_other_boots(self.directory, keep=self.root)
        self._scanned_at = time.monotonic()
        copies = sorted(_copies_under(self.root))  # oldest use first
        total = sum(size for _, size, _ in copies)
        target = self.max_bytes * LOW_WATER if total > self.max_bytes else total
        for used, size, path in copies:
            if total <= target:
                break
            if _remove_unless_used_since(path, used):
                total -= size
        _remove_stale_temps(self.root / TEMP_DIR)
        self._estimate = total
        return total


class LocalCopyStore:
    """An `S3BlobStore` of one area with replica-local copies of what it serves
    (see the module docstring); a `BlobStore`. Writes and lookups go to S3.

    Args:
        inner: the area's S3 store.
        copies: the process's copies (shared by every area).
        area: the area's directory under `copies.root`, e.g. "files".
    """

    def __init__(self, inner: S3BlobStore, copies: LocalCopies, area: str) -> None:
        self.inner = inner
        self.copies = copies
        self.name = inner.name  # how messages name the store: the bucket, not the copies
        # The copies of one area are laid out, and read, as a filesystem store's blobs.
        self._local = FilesystemBlobStore(copies.root / area)

    def local_path(self, key: str) -> Path | None:
        """The copy of `key` (now marked used), or None if there is none.

        Raises:
            InvalidBlobKey: the key is unsafe.
        """
        path = self._local.local_path(key)
        return path if self.copies.touch(path) else None

    async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        """See `BlobStore.read`: from the copy if there is one, else from S3 (and a
        whole read fills the copy). Raises what `S3BlobStore.read` raises."""
        source = await self._open_copy(key, byte_range)
        if source is None:
            sha256 = _sha256_of(key)
            if byte_range is None and sha256 is not None:
                source = self._read_through(key, sha256)
            else:
                source = self.inner.read(key, byte_range)
        async with _closing(source) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _open_copy(
        self, key: str, byte_range: ByteRange | None
    ) -> AsyncIterator[bytes] | None:
        """The copy's chunks, opened (so that an eviction can no longer take them
        away); None if there is no copy, or it was evicted (or could not be read)
        before it was opened: S3 has the bytes."""
        if self.local_path(key) is None:
            return None
        chunks = self._local.read(key, byte_range)
        try:
            first = await anext(chunks)
        except OSError:  # evicted by another process since the touch, or unreadable
            return None
        except StopAsyncIteration:  # an empty blob, or range
            first = b""
        return _chunks_of(first, chunks)

    async def _read_through(self, key: str, sha256: str) -> AsyncIterator[bytes]:
        """S3's bytes of `key`, copied on the way; the copy kept only if whole and right.

        Batch by batch: each is written to the copy while the next one comes from
        S3 (a worker thread beside the event loop), then passed on. The last one
        is passed on only once the copy is done: a client with every byte closes
        its connection at once, which would cancel a completion that came later.
        """
        fill = _Fill(self.copies)
        batch: list[bytes] = []
        scan_due = False
        try:
            async with _closing(self.inner.read(key, None)) as chunks:
                while True:
                    batch, more = await fill.next_batch(chunks)
                    if not more:
                        break
                    for chunk in batch:
                        yield chunk
            # All bytes are here: the copy no longer depends on the reader.
            with anyio.CancelScope(shield=True):
                scan_due = await fill.finish(self._local.local_path(key), sha256)
        finally:
            fill.abandon()  # nothing left after `finish`; a partial copy otherwise
        for chunk in batch:
            yield chunk
        if scan_due:  # after the last byte: a scan must not delay a download
            await self.copies.evict()

    def writer(self, filename: str) -> AbstractAsyncContextManager[BlobWriter]:
        """See `BlobStore.writer` (to S3; nothing is copied)."""
        return self.inner.writer(filename)

    async def put(self, filename: str, content: bytes, *, durable: bool = True) -> StoredBlob:
        """See `BlobStore.put` (to S3; nothing is copied)."""
        return await self.inner.put(filename, content, durable=durable)

    async def delete(self, key: str) -> None:
        """See `BlobStore.delete`: the copy, then the object."""
        await self._local.delete(key)
        await self.inner.delete(key)

    async def exists(self, key: str) -> bool:
        """See `BlobStore.exists`: asks S3 (a copy may outlive its object)."""
        return await self.inner.exists(key)

    async def presigned_url(self, key: str, expires_in: int) -> str:
        """See `S3BlobStore.presigned_url`."""
        return await self.inner.presigned_url(key, expires_in)

    async def ping(self) -> None:
        """See `S3BlobStore.ping`."""
        await self.inner.ping()


class _Fill:
    """One copy being filled: written in batches to a temporary file (made at the
    first batch), hashed on the way; given up for good at the first problem."""

    def __init__(self, copies: LocalCopies) -> None:
        self._copies = copies
        self._pending: list[bytes] = []  # read, not yet written
        self._ahead = b""  # read past the last batch: the first chunk of the next
        self._size = 0
        self._digest = hashlib.sha256()
        self._file: BinaryIO | None = None
        self._temp: Path | None = None
        self._given_up = False

    async def next_batch(self, chunks: AsyncIterator[bytes]) -> tuple[list[bytes], bool]:
        """The next `WRITE_BATCH` bytes of `chunks`, read while the previous batch is
        written, and whether more follow (False: the stream ended with these). One
        chunk past the batch is read ahead, so that the last batch is known as such.

        Raises what `chunks` raises.
        """
        batch = [self._ahead] if self._ahead else []
        size, more, self._ahead = len(self._ahead), True, b""
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            if self._pending:
                group.start_soon(self._flush)
            try:
                while more and not self._ahead:
                    chunk = await anext(chunks, None)
                    more = chunk is not None
                    if chunk and size >= WRITE_BATCH:
                        self._ahead = chunk  # the first of the next batch
                    elif chunk:
                        batch.append(chunk)
                        size += len(chunk)
            except Exception as error:  # re-raised below, not wrapped in an ExceptionGroup
                failure = error
        if failure is not None:
            raise failure
        self._take(batch, size)
        return batch, more

    def _take(self, batch: list[bytes], size: int) -> None:
        """Keep `batch` to be written next, unless the copy is given up or too big."""
        self._size += size
        if self._size > self._copies.max_blob:
            self.abandon()
        if not self._given_up:
            self._pending = batch

    async def finish(self, final: Path, sha256: str) -> bool:
        """Write the rest and rename the copy into place if its sha256 is `sha256`.
        Never raises. Returns True if the copy was kept and a scan is now due."""
        if self._given_up or not await self._flush():
            return False
        if self._digest.hexdigest() != sha256:
            logger.warning("not keeping a local copy of %s: its bytes do not match", final)
            self.abandon()
            return False
        try:
            await anyio.to_thread.run_sync(self._rename, final)
        except OSError as error:
            logger.warning("could not keep a local copy of %s: %s", final, error)
            self.abandon()
            return False
        return self._copies.added(self._size)

    async def _flush(self) -> bool:
        """Write what has gathered; False if that failed and the copy was given up."""
        batch, self._pending = self._pending, []
        try:
            await anyio.to_thread.run_sync(self._write, batch)
        except OSError as error:  # e.g. a full disk: the read goes on without a copy
            logger.warning("giving up a local copy in %s: %s", self._copies.root, error)
            self.abandon()
            return False
        return True

    def _write(self, batch: list[bytes]) -> None:
        if self._file is None:
            self._file, self._temp = self._copies.open_temp()
        self._file.writelines(batch)
        for chunk in batch:
            self._digest.update(chunk)

    def _rename(self, final: Path) -> None:
        # Both made by the last flush, even of an empty blob.
        assert self._file is not None
        assert self._temp is not None
        if self._copies.durable:  # no boot id to forget torn copies by
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        final.parent.mkdir(parents=True, exist_ok=True)
        # Atomic, and a concurrent fill of the same key renames the very same bytes.
        self._temp.replace(final)
        self._file, self._temp, self._given_up = None, None, True

    def abandon(self) -> None:
        """Give the copy up and remove its temporary file (quick: on the event loop)."""
        self._given_up = True
        self._pending = []
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink(missing_ok=True)
        self._file, self._temp = None, None


async def _chunks_of(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`first` (unless empty), then `rest` (closed when this is)."""
    async with _closing(rest) as chunks:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk


@asynccontextmanager
async def _closing(chunks: AsyncIterator[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """`chunks`, closed on exit: an async generator left mid-way runs its `finally`
    (closes its file, removes its temporary file) now, not when collected."""
    try:
        yield chunks
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def kernel_boot_id() -> str | None:
    """The kernel's name for this boot (Linux), or None."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _remove_other_boots(directory: Path, keep: Path) -> None:
    """Remove the copies of earlier boots: a crash of the machine may have torn them."""
    with contextlib.suppress(FileNotFoundError):
        for other in directory.iterdir():
            if other != keep:
                shutil.rmtree(other, ignore_errors=True)


def _sha256_of(key: str) -> str | None:
    """The sha256 a content-addressed key names; None for any other key."""
    found = _CONTENT_KEY.fullmatch(key)
    return found["sha"] if found else None


def _copies_under(root: Path) -> list[tuple[int, int, Path]]:
    """(mtime in ns, size, path) of every copy under `root`, temporary files aside."""
    found: list[tuple[int, int, Path]] = []
    for directory, subdirectories, files in os.walk(root):
        if directory == str(root):
            subdirectories[:] = [d for d in subdirectories if d != TEMP_DIR]
        for name in files:
            path = Path(directory, name)
            try:
                stat = path.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            found.append((stat.st_mtime_ns, stat.st_size, path))
    return found


def _remove_unless_used_since(path: Path, used: int) -> bool:
    """Remove the copy at `path` unless its mtime moved past `used` (a use since the
    scan saw it); True if it is gone now (also: another process removed it)."""
    try:
        if path.stat().st_mtime_ns != used:
            return False
        path.unlink()
    except FileNotFoundError:
        return True
    with contextlib.suppress(OSError):  # not empty: another filename of these bytes
        path.parent.rmdir()
    return True


def _remove_stale_temps(temp_dir: Path) -> None:
    cutoff = time.time() - STALE_TEMP
    for path in temp_dir.glob("*.part"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
