"""Temporary files left by a crash: found and removed, at start and every so often.

Every write goes through a temporary file (or object) first, renamed (or
copied) into place once whole, and removed when the write fails. A process
killed mid-write (kill -9, the OOM killer, a power cut) removes nothing: its
partial file stays, in every store:

- a filesystem store's `<area>/.tmp/*.part` (uploads, cached upstream files,
  METADATA), and the page cache's `<upstream>/.*.part`;
- an S3 store's staging objects under `<prefix>/<area>/.tmp/` (a large blob
  whose copy into place was cut off; the multipart uploads themselves are a
  bucket lifecycle rule's to abort);
- the spool directory (`<data_dir>/spool`: whole upstream wheels read for
  their METADATA, advisory downloads; the S3 writers' spools are unnamed
  and vanish with the process);
- the replica-local copies of S3 blobs (`storage/local_copies.py`): their
  `.tmp/*.part`, which that module also sweeps when it scans.

A file is taken for a crash's when nothing has written to it for `max_age`
seconds: every writer writes as the bytes arrive, so a write in progress, in
this process or another one (a worker, a replica sharing the store, `packyard
import`), keeps its file young. `packyard serve` sweeps once before any worker
starts, and each worker every `interval` seconds (`TempSweeper`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from packyard.storage.filesystem import FilesystemBlobStore
from packyard.storage.s3 import S3BlobStore

logger = logging.getLogger(__name__)

PAGE_TEMP_PATTERN = ".*.part"  # the page cache's temporary files (`page_store._write`)


def remove_stale_files(paths: Iterable[Path], max_age: float) -> int:
    """Remove each of `paths` that is a file not written to for `max_age` seconds.

    Returns how many were removed (one another process removed first is not counted).
    """
    cutoff = time.time() - max_age
    removed = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


async def sweep(
    stores: Iterable[object], local_dirs: Iterable[tuple[Path, str]], max_age: float
) -> int:
    """Remove the temporary files and objects of `stores` and of `local_dirs` that
    nothing wrote to for `max_age` seconds; how many went.

    Args:
        stores: blob stores: a `FilesystemBlobStore` (its `.tmp/`), an
            `S3BlobStore` (its staging objects), or one that wraps an S3 store
            (`inner`) with local copies (`copies.root`, whose `.tmp/` is swept).
        local_dirs: (directory, glob) pairs of other temporary files, e.g. the
            spool and the page cache, searched recursively.

    An S3 store that does not answer is logged and skipped: the next sweep tries again.
    """
    removed = 0
    for store in stores:
        removed += await _sweep_store(store, max_age)
    for directory, pattern in local_dirs:
        removed += await anyio.to_thread.run_sync(_sweep_directory, directory, pattern, max_age)
    return removed


def _sweep_directory(directory: Path, pattern: str, max_age: float) -> int:
    if not directory.is_dir():
        return 0
    return remove_stale_files(directory.rglob(pattern), max_age)


async def _sweep_store(store: object, max_age: float) -> int:
    removed = 0
    copies_root = getattr(getattr(store, "copies", None), "root", None)
    if isinstance(copies_root, Path):  # replica-local copies: laid out as a filesystem store
        copies = FilesystemBlobStore(copies_root)
        removed += await anyio.to_thread.run_sync(copies.remove_stale_temp_files, max_age)
    store = getattr(store, "inner", store)
    if isinstance(store, FilesystemBlobStore):
        removed += await anyio.to_thread.run_sync(store.remove_stale_temp_files, max_age)
    elif isinstance(store, S3BlobStore):
        try:
            removed += await store.remove_stale_temp_objects(max_age)
        except OSError as error:  # StoreUnavailable
            logger.warning("could not look for stale temporary objects: %s", error)
    return removed


class TempSweeper:
    """Sweeps `stores` and `local_dirs` (see `sweep`) every `interval` seconds while
    the app serves: `running` is a background task for the app's lifespan."""

    def __init__(
        self,
        stores: Iterable[object],
        local_dirs: Iterable[tuple[Path, str]],
        *,
        max_age: float,
        interval: float,
    ) -> None:
        self._stores = list(stores)
        self._local_dirs = list(local_dirs)
        self.max_age = max_age
        self.interval = interval

    async def sweep_once(self) -> int:
        """One sweep now; how many temporary files and objects were removed (logged)."""
        removed = await sweep(self._stores, self._local_dirs, self.max_age)
        if removed:
            logger.info(
                "removed %d temporary files left by interrupted writes (none written to for %g s)",
                removed,
                self.max_age,
            )
        return removed

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Sweep every `interval` seconds until the block ends."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._forever)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def _forever(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.sweep_once()
            except OSError as error:  # a directory that cannot be read: next time
                logger.warning("could not sweep temporary files: %s", error)
