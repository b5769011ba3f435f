"""Recording a distribution file: the pieces the importer and the upload API share.

Both write paths end the same way (DESIGN §3): the file's bytes are already a
committed blob, a wheel's METADATA becomes a blob of its own (so pages can
advertise its sha256 and `.metadata` is served without opening the wheel),
and one transaction adds the file row and bumps the serial. If that
transaction fails, the blobs it would have referenced are removed, unless
another writer's row uses them (content addressing means two uploads of the
same bytes share one blob).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File, Project
from packyard.dists.filenames import DistFilename
from packyard.dists.metadata import CoreMetadata
from packyard.storage.base import BlobStore, StoredBlob

# PEP 792: archived and quarantined projects MUST NOT accept new files.
CLOSED_STATUSES = ("archived", "quarantined")


async def store_bytes(store: BlobStore, filename: str, content: bytes) -> StoredBlob:
    """Store `content` as a committed blob named `filename`.

    Raises:
        InvalidBlobKey: `filename` can't be part of a key.
        OSError: the blob could not be written.
    """
    async with store.writer(filename) as writer:
        await writer.write(content)
        return await writer.commit()


def find_existing(sessions: sessionmaker[Session], filename: str, blake2_256: str) -> File | None:
    """The stored file with this filename, else the one with these bytes, else None.

    STANDARDS §2.14: a file "exists" if its filename or its blake2_256 is stored.

    Raises:
        SQLAlchemyError: the database failed.
    """
    with sessions() as session:
        rows = session.scalars(
            select(File).where(or_(File.filename == filename, File.blake2_256 == blake2_256))
        ).all()
    return next((row for row in rows if row.filename == filename), rows[0] if rows else None)


def file_row(
    project: Project,
    dist: DistFilename,
    metadata: CoreMetadata,
    blobs: list[StoredBlob],
    now: datetime,
) -> File:
    """The `files` row of `dist`: `blobs` is the file's blob, then its METADATA blob if any."""
    blob, metadata_blob = blobs[0], (blobs[1] if len(blobs) > 1 else None)
    return File(
        project=project,
        filename=dist.filename,
        version=str(dist.version),
        packagetype=dist.packagetype,
        python_version=dist.python_version,
        requires_python=metadata.requires_python,
        size=blob.size,
        sha256=blob.sha256,
        blake2_256=blob.blake2_256,
        md5=blob.md5,
        upload_time=now,
        blob_key=blob.key,
        metadata_sha256=metadata_blob.sha256 if metadata_blob else None,
        metadata_blob_key=metadata_blob.key if metadata_blob else None,
        summary=metadata.summary,
    )


async def remove_unreferenced(
    sessions: sessionmaker[Session], store: BlobStore, blobs: list[StoredBlob]
) -> None:
    """Remove the blobs this write created, unless a row (another writer's) uses them.

    Shielded from cancellation: a cancelled write must still clean up. Never
    raises for a blob that cannot be removed: an orphan blob is never served.
    """
    with anyio.CancelScope(shield=True):
        for blob in blobs:
            if blob.created and not await anyio.to_thread.run_sync(
                _is_referenced, sessions, blob.key
            ):
                try:
                    await store.delete(blob.key)
                except OSError:
                    continue


def _is_referenced(sessions: sessionmaker[Session], key: str) -> bool:
    try:
        with sessions() as session:
            found = session.scalar(
                select(File.id).where(or_(File.blob_key == key, File.metadata_blob_key == key))
            )
    except SQLAlchemyError:
        # Can't tell: keep the blob. An orphan blob is never served; a row
        # whose blob was deleted would be.
        return True
    return found is not None


@asynccontextmanager
async def local_copy(store: BlobStore, key: str) -> AsyncIterator[Path]:
    """A path on this machine with the blob's bytes: the blob itself on a filesystem
    store, else a temporary copy (removed on exit), since zip needs random access."""
    path = store.local_path(key)
    if path is not None:
        yield path
        return
    directory = await anyio.to_thread.run_sync(tempfile.mkdtemp)
    try:
        copy = Path(directory) / key.rsplit("/", 1)[-1]
        async with await anyio.open_file(copy, "wb") as target:
            async for chunk in store.read(key, None):
                await target.write(chunk)
        yield copy
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, directory, True)
