"""`packyard import DIR`: add every wheel and sdist found in a directory tree.

Each file is added on its own, all or nothing (DESIGN §3):

1. its filename is checked, its members as for an upload (nothing escapes
   the tree, nothing repeats, no bomb: `dists/archive.py`), its METADATA
   (wheel) or PKG-INFO (sdist) read, and name and version must match the
   filename; a description over `upload.max_description_bytes` is refused;
2. its bytes are streamed into the blob store under a temporary name and hashed;
3. a file already stored under that filename, or with the same blake2_256,
   stops here: the same bytes are "already present", other bytes a conflict,
   and the temporary blob is thrown away;
4. the blob is committed, a wheel's METADATA bytes are stored as their own
   blob (so pages can advertise their sha256 and `.metadata` is served without
   opening the wheel), and the project row (created if missing), the file row
   and the serial bump are committed in ONE transaction;
5. if that transaction fails, the blobs it would have referenced are removed.

A file that would create a NEW project must pass the name guard first, as an
upload does (`publish/name_guard.py`): a standard-library name, a public
project's name on an upstream or a look-alike of one is refused with the
upload's message (`refused`) unless an admin allowed it (`packyard name
allow`). Without a guard, the guard has no upstreams: standard-library names
and look-alikes of in-house names are still refused.

A bad file is reported and skipped; the others are still imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, Protocol

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.dists.archive import ArchiveLimits
from packyard.dists.filenames import DistFilename, parse_filename
from packyard.dists.metadata import CoreMetadata
from packyard.errors import PackyardError
from packyard.publish.deletions import refuse_deleted_filename
from packyard.publish.name_guard import NameGuard as DefaultNameGuard
from packyard.publish.recording import (
    CLOSED_STATUSES,
    file_row,
    find_existing,
    remove_unreferenced,
    store_bytes,
)
from packyard.publish.validation import read_archive_metadata
from packyard.settings import UploadSettings
from packyard.storage.base import BlobStore, BlobWriter, InvalidBlobKey, StoredBlob

DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")
DEFAULT_LIMITS = UploadSettings()  # archive and description limits, as for uploads
COPY_CHUNK_SIZE = 1024 * 1024

Outcome = Literal["added", "present", "conflict", "refused", "invalid"]


class NameGuard(Protocol):
    """Decides whether a NEW project may take a name (`publish/name_guard.py`)."""

    async def check(self, name: str) -> None:
        """Raises InvalidRequest (or an upstream error) when the name may not be used."""
        ...


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What happened to one file: `added`, `present` (the same file was already
    stored), `conflict` (other bytes are stored under its name), `refused` (the
    name guard refused its new project's name) or `invalid`."""

    path: Path
    outcome: Outcome
    message: str = ""

    @property
    def line(self) -> str:
        """One line for a person: the filename, then what happened to it."""
        text = self.message or self.outcome
        return text if self.path.name in text else f"{self.path.name}: {text}"


@dataclass(slots=True)
class ImportReport:
    """Every file's result, by outcome, in the order the files were imported."""

    added: list[ImportResult] = field(default_factory=list)
    skipped: list[ImportResult] = field(default_factory=list)  # already present
    conflicts: list[ImportResult] = field(default_factory=list)
    refused: list[ImportResult] = field(default_factory=list)  # by the name guard
    errors: list[ImportResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file was a conflict, refused or an error (a clean exit status)."""
        return not self.conflicts and not self.refused and not self.errors

    def record(self, result: ImportResult) -> None:
        by_outcome = {
            "added": self.added,
            "present": self.skipped,
            "conflict": self.conflicts,
            "refused": self.refused,
            "invalid": self.errors,
        }
        by_outcome[result.outcome].append(result)


ProgressCallback = Callable[[ImportResult], None]
"""Called once per file, right after it was handled, with its result."""


def find_distributions(directory: Path) -> list[Path]:
    """Every `.whl`, `.tar.gz` and `.zip` file under `directory`, recursively, sorted.

    Raises:
        OSError: the directory cannot be listed.
    """
    return sorted(
        path
        for path in directory.rglob("*")
        if path.name.endswith(DIST_SUFFIXES) and path.is_file()
    )


async def import_directory(
    directory: Path,
    session_factory: sessionmaker[Session],
    store: BlobStore,
    on_progress: ProgressCallback | None = None,
    *,
    name_guard: NameGuard | None = None,
    limits: UploadSettings = DEFAULT_LIMITS,
) -> ImportReport:
    """Import every distribution under `directory` (see the module docstring).

    Run it from synchronous code with `anyio.run(import_directory, ...)`. To
    know the number of files first (for a progress bar), call
    `find_distributions` and then `import_files`.

    Raises:
        OSError: the directory cannot be listed. Problems with single files
            never raise: they are in the report.
    """
    paths = await anyio.to_thread.run_sync(find_distributions, directory)
    return await import_files(
        paths, session_factory, store, on_progress, name_guard=name_guard, limits=limits
    )


async def import_files(
    paths: Iterable[Path],
    session_factory: sessionmaker[Session],
    store: BlobStore,
    on_progress: ProgressCallback | None = None,
    *,
    name_guard: NameGuard | None = None,
    limits: UploadSettings = DEFAULT_LIMITS,
) -> ImportReport:
    """Import each file of `paths` in turn; `on_progress` hears about each one.

    `name_guard` decides on new projects' names (default: the name guard with
    no upstreams); `limits` bound archives and descriptions as for uploads."""
    guard = name_guard if name_guard is not None else DefaultNameGuard(session_factory, ())
    report = ImportReport()
    for path in paths:
        result = await import_file(path, session_factory, store, name_guard=guard, limits=limits)
        report.record(result)
        if on_progress is not None:
            on_progress(result)
    return report


async def import_file(
    path: Path,
    session_factory: sessionmaker[Session],
    store: BlobStore,
    *,
    name_guard: NameGuard | None = None,
    limits: UploadSettings = DEFAULT_LIMITS,
) -> ImportResult:
    """Import one file, all or nothing. Never raises for a problem with the file,
    the blob store or the database: those come back as an `invalid` result, a
    name the guard (default: the name guard with no upstreams) refuses as `refused`."""
    guard = name_guard if name_guard is not None else DefaultNameGuard(session_factory, ())
    try:
        return await _import(path, session_factory, store, guard, limits)
    except _Refused as exc:
        return ImportResult(path, "refused", f"{path.name}: {exc.error.message}")
    except (PackyardError, InvalidBlobKey) as exc:
        return ImportResult(path, "invalid", str(exc))
    except OSError as exc:
        return ImportResult(path, "invalid", f"cannot be read or stored: {exc}")
    except SQLAlchemyError as exc:
        return ImportResult(path, "invalid", f"the database refused it: {exc}")


async def _import(
    path: Path,
    sessions: sessionmaker[Session],
    store: BlobStore,
    name_guard: NameGuard,
    limits: UploadSettings,
) -> ImportResult:
    dist = parse_filename(path.name)
    archive_limits = ArchiveLimits(limits.max_uncompressed_ratio, limits.max_uncompressed_bytes)
    metadata = await anyio.to_thread.run_sync(
        partial(
            read_archive_metadata,
            path,
            dist,
            archive_limits,
            limits.max_description_bytes,
            require_record=False,
        )
    )
    if not await anyio.to_thread.run_sync(_project_exists, sessions, dist.name):
        try:
            await name_guard.check(metadata.name)
        except PackyardError as exc:
            raise _Refused(exc) from exc
    async with store.writer(dist.filename) as writer:
        await _copy(path, writer)
        digests = writer.hexdigests()
        existing = await anyio.to_thread.run_sync(
            find_existing, sessions, dist.filename, digests["blake2_256"]
        )
        if existing is not None:
            return _duplicate(path, existing, digests["sha256"])
        blob = await writer.commit()
    blobs = [blob]
    try:
        if dist.packagetype == "bdist_wheel":
            blobs.append(await store_bytes(store, f"{dist.filename}.metadata", metadata.content))
        now = datetime.now(UTC)
        await anyio.to_thread.run_sync(_record, sessions, dist, metadata, blobs, now)
    except IntegrityError:
        # Most likely another writer added this very file between our check
        # and our commit: then it is a duplicate, not an error.
        await remove_unreferenced(sessions, store, blobs)
        existing = await anyio.to_thread.run_sync(
            find_existing, sessions, dist.filename, blob.blake2_256
        )
        if existing is None:
            raise
        return _duplicate(path, existing, blob.sha256)
    except BaseException:
        await remove_unreferenced(sessions, store, blobs)
        raise
    return ImportResult(path, "added")


async def _copy(path: Path, writer: BlobWriter) -> None:
    async with await anyio.open_file(path, "rb") as source:
        while chunk := await source.read(COPY_CHUNK_SIZE):
            await writer.write(chunk)


class _Refused(Exception):
    """The name guard refused a new project's name: `error` says why."""

    def __init__(self, error: PackyardError) -> None:
        super().__init__(error.message)
        self.error = error


def _project_exists(sessions: sessionmaker[Session], name: str) -> bool:
    with sessions() as session:
        return session.scalar(select(Project.id).where(Project.name == name)) is not None


def _duplicate(path: Path, existing: File, sha256: str) -> ImportResult:
    if existing.filename != path.name:
        message = f"the same file is already stored as {existing.filename!r}"
        return ImportResult(path, "conflict", f"{path.name}: {message}")
    if existing.sha256 == sha256:
        return ImportResult(path, "present", "already present")
    message = f"a different file is already stored under this name (sha256 {existing.sha256})"
    return ImportResult(path, "conflict", f"{path.name}: {message}")


def _record(
    sessions: sessionmaker[Session],
    dist: DistFilename,
    metadata: CoreMetadata,
    blobs: list[StoredBlob],
    now: datetime,
) -> None:
    """Insert the project (if new) and the file, and bump the serial: one transaction.

    Raises:
        PackyardError: the project is archived or quarantined, or the filename
            was deleted once (it can never be used again).
        IntegrityError: the filename or the bytes were stored meanwhile.
        SQLAlchemyError: the database failed.
    """
    with sessions.begin() as session:
        refuse_deleted_filename(session, dist.filename)
        project = session.scalar(select(Project).where(Project.name == dist.name))
        if project is None:
            project = Project(name=dist.name, display_name=metadata.name, created_at=now)
            session.add(project)
        elif project.status in CLOSED_STATUSES:
            raise PackyardError(
                f"{dist.filename}: project {dist.name!r} is {project.status}: "
                "it accepts no new files."
            )
        session.add(file_row(project, dist, metadata, blobs, now))
        bump_serial(session)
