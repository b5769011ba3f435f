"""Blobs as files under one root directory, written atomically.

A new blob is streamed into a temporary file under `<root>/.tmp/` (the same
file system as its final place, so the rename is atomic), hashed while it is
written, flushed to disk with fsync, and only on `commit` renamed to its
content-addressed key. A crash before the rename leaves only a temporary
file, which no key points at; `remove_stale_temp_files` clears those.
A write that finds the disk full raises `StorageFull` (`storage/full.py`),
and its temporary file is removed like any other aborted write's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from packyard.model import ByteRange
from packyard.storage.base import BlobWriter, StoredBlob, blob_key, check_key
from packyard.storage.full import free_bytes, storing
from packyard.storage.spool import SpooledWriter

CHUNK_SIZE = 1024 * 1024
TEMP_DIR = ".tmp"  # keys start with two hex digits, so this never clashes with one


class FilesystemBlobStore:
    """A `BlobStore` on the local file system, rooted at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.name = f"file://{self.root}"  # how messages name this store
        self.place = f"the blob store {self.name}"

    def local_path(self, key: str) -> Path:
        """The file of `key` (it may not exist). Raises InvalidBlobKey for an unsafe key."""
        # check_key refuses `..`, empty segments and separators, so the path
        # stays under the root whatever the key says.
        return self.root / check_key(key)

    async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        """See `BlobStore.read`; chunks are at most `CHUNK_SIZE` bytes.

        Each worker-thread hop costs more than reading a small file from the
        page cache, so the first hop opens the file and reads the first chunk
        together: a file of up to `CHUNK_SIZE` bytes costs one hop in all.
        """
        path = self.local_path(key)
        offset = 0 if byte_range is None else byte_range.start
        fd, size = -1, 0
        try:
            fd, size, chunk = await anyio.to_thread.run_sync(_open_and_read, path, offset)
            end = size if byte_range is None else min(size, byte_range.end + 1)
            while chunk and offset < end:
                chunk = chunk[: end - offset]
                offset += len(chunk)
                yield chunk
                if offset < end:
                    chunk = await anyio.to_thread.run_sync(os.pread, fd, CHUNK_SIZE, offset)
        finally:
            if fd >= 0:
                os.close(fd)

    @asynccontextmanager
    async def writer(self, filename: str) -> AsyncIterator[BlobWriter]:
        """See `BlobStore.writer`."""
        blob_key("0" * 64, filename)  # refuse a bad name before writing anything
        with storing(self.place, filename):
            file, temp = await anyio.to_thread.run_sync(self._open_temp)
        writer = FileBlobWriter(self, filename, file, temp)
        try:
            yield writer
        finally:
            # Shielded: a cancelled import must still remove its temporary file.
            with anyio.CancelScope(shield=True):
                await writer.abort()

    async def put(self, filename: str, content: bytes, *, durable: bool = True) -> StoredBlob:
        """See `BlobStore.put`: one worker-thread hop where a writer takes three.

        Not `durable`: written on the event loop, without fsync. A small write
        into the page cache costs less than a thread hop, which on a busy
        loop waits up to the interpreter's 5 ms switch interval.
        """
        blob_key("0" * 64, filename)
        with storing(self.place, filename):
            if not durable:
                return self._put(filename, content, durable=False)
            return await anyio.to_thread.run_sync(self._put, filename, content)

    def _put(self, filename: str, content: bytes, *, durable: bool = True) -> StoredBlob:
        file, temp = self._open_temp()
        writer = FileBlobWriter(self, filename, file, temp)
        try:
            writer._write(content)
            return writer._commit(durable=durable)
        except BaseException:
            writer._discard()
            raise

    def _open_temp(self) -> tuple[BinaryIO, Path]:
        temp_dir = self.root / TEMP_DIR
        temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=temp_dir, suffix=".part")
        return os.fdopen(fd, "wb"), Path(name)

    def free_bytes(self) -> int:
        """Bytes still free on the store's file system (`storage.full.check_room`)."""
        return free_bytes(self.root)

    async def delete(self, key: str) -> None:
        """See `BlobStore.delete`; also removes the blob's now empty directory."""
        path = self.local_path(key)
        await anyio.to_thread.run_sync(_unlink_with_empty_parent, path)

    async def exists(self, key: str) -> bool:
        """See `BlobStore.exists`."""
        return await anyio.to_thread.run_sync(self.local_path(key).is_file)

    def remove_stale_temp_files(self, max_age: float = 86_400.0) -> int:
        """Delete temporary files older than `max_age` seconds (left by a crash).

        Younger ones may belong to a write in progress in another process.
        Returns how many files were removed.
        """
        cutoff = time.time() - max_age
        removed = 0
        for path in (self.root / TEMP_DIR).glob("*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # another process cleaned it up first
        return removed


class FileBlobWriter(SpooledWriter):
    """A `BlobWriter` into a temporary file, renamed into place on commit; see
    `FilesystemBlobStore.writer`."""

    def __init__(
        self, store: FilesystemBlobStore, filename: str, file: BinaryIO, temp: Path
    ) -> None:
        super().__init__(file, store.place, filename)
        self._root = store.root
        self._temp = temp

    async def commit(self) -> StoredBlob:
        self._check_open()
        try:
            with storing(self._place, self._filename):
                blob = await anyio.to_thread.run_sync(self._commit)
        except BaseException:
            await self.abort()
            raise
        self._done = True
        return blob

    def _commit(self, *, durable: bool = True) -> StoredBlob:
        self._spool.flush()
        if durable:
            os.fsync(self._spool.fileno())
        self._spool.close()
        digests = self.hexdigests()
        key = blob_key(digests["sha256"], self._filename)
        final = self._root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        created = not final.exists()
        if created or not durable:
            # Atomic: readers see all of it or nothing. A blob that was not
            # durable may have been damaged by a crash: it is replaced.
            self._temp.replace(final)
            if durable:
                _fsync_directory(final.parent)
        else:
            # Same key, same sha256: the very bytes are already stored.
            self._temp.unlink()
        return StoredBlob(key=key, size=self.size, created=created, **digests)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        await anyio.to_thread.run_sync(self._discard)

    def _discard(self) -> None:
        self._spool.close()
        self._temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where unsupported)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_with_empty_parent(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: another filename of these bytes
        path.parent.rmdir()


def _open_and_read(path: Path, offset: int) -> tuple[int, int, bytes]:
    """Open `path`, and return its descriptor, size and first chunk from `offset`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.fstat(fd).st_size, os.pread(fd, CHUNK_SIZE, offset)
    except BaseException:
        os.close(fd)
        raise
