"""`packyard import DIR`: add every wheel and sdist found in a directory tree,
under exactly the rules of an upload (STANDARDS §2; `publish/upload.py`).

Each file is added on its own, all or nothing (DESIGN §3):

1. the upload's checks that need no stored bytes: the filename (§2.12), the
   size against `upload.max_file_size` (§2.13), the archive (nothing escapes
   the tree, nothing repeats, no bomb, a wheel has its RECORD: §2.16), its
   METADATA or PKG-INFO under the form's rules (`validate_file_metadata`,
   §2.9: the file's metadata is what twine would send) and against the
   filename (§2.17-2.18), a README within `upload.max_description_bytes`;
2. the project: an archived or quarantined one takes nothing (PEP 792); a
   NEW project's name must pass the name guard (§2.10, dependency
   confusion), unless the administrator running the import passed
   `allow_public_names` (then the guard's standard-library and validity
   rules still apply, and each public name taken is audited);
3. its bytes are streamed into the blob store under a temporary name and
   hashed; the upload's reuse rules decide (`UploadService.is_present`): the
   identical file again is "already present", any other reuse of the
   filename or the bytes, a deleted filename or a second sdist of a release
   is refused;
4. ONE transaction: the project (if new) with its owner (`ImportRules.owner`,
   a user or a group; none: the project is listed by `packyard owner
   orphaned`), the file row, its METADATA blob, its requirements (checked
   against the advisories at the next advisory import:
   `advisories/dependency_findings.py`), the serial bump and the audit
   event (`import`). A refusal is audited in a transaction of its own;
5. if that transaction fails, the blobs it would have referenced are removed.

A refused file is reported and skipped; the others are still imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, Protocol

import anyio
import anyio.to_thread
from packaging.metadata import Metadata
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.dependency_findings import record_release
from packyard.advisories.findings import read_requirements
from packyard.auth.identity import Identity
from packyard.db.models import Project
from packyard.db.serial import bump_serial
from packyard.dists.archive import ArchiveLimits
from packyard.dists.filenames import DistFilename, parse_filename
from packyard.dists.metadata import CoreMetadata
from packyard.errors import Conflict, PackyardError
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.deletions import refuse_deleted_filename
from packyard.publish.multipart import file_too_large
from packyard.publish.name_guard import NameGuard as DefaultNameGuard
from packyard.publish.name_guard import check_new_name
from packyard.publish.ownership import find_owner, give_new_project
from packyard.publish.recording import (
    CLOSED_STATUSES,
    file_row,
    remove_unreferenced,
    store_bytes,
)
from packyard.publish.upload import UploadService, closed_project
from packyard.publish.upload_form import UploadForm
from packyard.publish.validation import (
    check_filename_characters,
    read_archive_metadata,
    validate_file,
    validate_file_metadata,
)
from packyard.settings import UploadSettings
from packyard.storage.base import BlobStore, BlobWriter, InvalidBlobKey, StoredBlob

DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")
DEFAULT_LIMITS = UploadSettings()  # the upload's limits
COPY_CHUNK_SIZE = 1024 * 1024
IMPORTER = Identity(kind="cli", name="import", is_admin=True)

Outcome = Literal["added", "present", "refused", "failed"]


class NameGuard(Protocol):
    """Decides whether a NEW project may take a name (`publish/name_guard.py`)."""

    async def check(self, name: str) -> None:
        """Raises InvalidRequest (or an upstream error) when the name may not be used."""
        ...

    async def check_public(self, name: str) -> None:
        """The public-name part of `check` alone; raises as `check`."""
        ...


@dataclass(frozen=True, slots=True)
class ImportRules:
    """Who imports, and the choices an upload does not have.

    `actor`: the administrator running the import (the audit trail's actor);
    `owner`: `user:NAME`, `group:NAME` or a bare NAME (`ownership.find_owner`)
    made owner of each new project, None for none; `allow_public_names`: new
    projects may take public names (each one audited as `name-guard-override`);
    `limits`: the upload's limits.
    """

    actor: Identity = IMPORTER
    owner: str | None = None
    allow_public_names: bool = False
    limits: UploadSettings = DEFAULT_LIMITS
    origin: Origin = COMMAND_LINE


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What happened to one file: `added`, `present` (the identical file was
    already stored), `refused` (it breaks a rule of uploads: `message` says
    which) or `failed` (the file, the blob store or the database could not be
    read or written). An added file may carry a `message` too: the public
    name it took under `allow_public_names`."""

    path: Path
    outcome: Outcome
    message: str = ""
    created: str | None = None  # the project this file created (added files only)

    @property
    def line(self) -> str:
        """One line for a person: the filename (escaped if unprintable), then what
        happened to it."""
        text = self.message or self.outcome
        shown = _shown(self.path)
        return text if text.startswith(shown) else f"{shown}: {text}"


@dataclass(slots=True)
class ImportReport:
    """Every file's result, by outcome, in the order the files were imported."""

    added: list[ImportResult] = field(default_factory=list)
    skipped: list[ImportResult] = field(default_factory=list)  # already present
    refused: list[ImportResult] = field(default_factory=list)
    errors: list[ImportResult] = field(default_factory=list)  # failed

    @property
    def ok(self) -> bool:
        """True when no file was refused or failed (a clean exit status)."""
        return not self.refused and not self.errors

    def record(self, result: ImportResult) -> None:
        by_outcome = {
            "added": self.added,
            "present": self.skipped,
            "refused": self.refused,
            "failed": self.errors,
        }
        by_outcome[result.outcome].append(result)


DEFAULT_RULES = ImportRules()

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
    rules: ImportRules = DEFAULT_RULES,
) -> ImportReport:
    """Import every distribution under `directory` (see the module docstring).

    Run it from synchronous code with `anyio.run(import_directory, ...)`. To
    know the number of files first (for a progress bar), call
    `find_distributions` and then `import_files`.

    Raises:
        OSError: the directory cannot be listed.
        NotFound, InvalidRequest: `rules.owner` names no usable user or group.
            Problems with single files never raise: they are in the report.
    """
    paths = await anyio.to_thread.run_sync(find_distributions, directory)
    return await import_files(
        paths, session_factory, store, on_progress, name_guard=name_guard, rules=rules
    )


async def import_files(
    paths: Iterable[Path],
    session_factory: sessionmaker[Session],
    store: BlobStore,
    on_progress: ProgressCallback | None = None,
    *,
    name_guard: NameGuard | None = None,
    rules: ImportRules = DEFAULT_RULES,
) -> ImportReport:
    """Import each file of `paths` in turn; `on_progress` hears about each one.

    `name_guard` decides on new projects' names (default: the name guard with
    no upstreams).

    Raises:
        NotFound, InvalidRequest: `rules.owner` names no usable user or group
            (checked before any file).
    """
    importer = _Importer(session_factory, store, name_guard, rules)
    if rules.owner is not None:
        await anyio.to_thread.run_sync(importer.owner_exists)
    report = ImportReport()
    for path in paths:
        result = await importer.run(path)
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
    rules: ImportRules = DEFAULT_RULES,
) -> ImportResult:
    """Import one file, all or nothing. Never raises: a broken rule comes back
    as a `refused` result, a problem with the file, the blob store or the
    database as `failed`."""
    return await _Importer(session_factory, store, name_guard, rules).run(path)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A file that passed every check that needs no stored bytes."""

    dist: DistFilename
    metadata: Metadata
    core: CoreMetadata
    is_new: bool
    public_name: str | None  # the guard's refusal that `allow_public_names` overrode


class _Importer:
    """One import run: the store, the guard, the rules, and the upload's reuse check."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        name_guard: NameGuard | None,
        rules: ImportRules,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.guard = name_guard if name_guard is not None else DefaultNameGuard(sessions, ())
        self.rules = rules
        self.uploads = UploadService(sessions, store, self.guard, rules.limits)
        limits = rules.limits
        self.archive_limits = ArchiveLimits(
            limits.max_uncompressed_ratio, limits.max_uncompressed_bytes
        )

    def owner_exists(self) -> None:
        """Raises NotFound or InvalidRequest unless `rules.owner` names a usable owner."""
        if self.rules.owner is not None:
            with self.sessions() as session:
                find_owner(session, self.rules.owner)

    async def run(self, path: Path) -> ImportResult:
        try:
            return await self._import(path)
        except (PackyardError, InvalidBlobKey) as exc:
            message = exc.message if isinstance(exc, PackyardError) else str(exc)
            await self._audit_refusal(path, message)
            return ImportResult(path, "refused", f"{_shown(path)}: {message}")
        except OSError as exc:
            return ImportResult(path, "failed", f"cannot be read or stored: {exc}")
        except SQLAlchemyError as exc:
            return ImportResult(path, "failed", f"the database failed: {exc}")

    async def _import(self, path: Path) -> ImportResult:
        checked = await self._check(path)
        dist = checked.dist
        async with self.store.writer(dist.filename) as writer:
            await _copy(path, writer)
            digests = writer.hexdigests()
            if await anyio.to_thread.run_sync(self.uploads.is_present, dist, digests):
                return ImportResult(path, "present", "already present")
            blob = await writer.commit()
        blobs = [blob]
        try:
            if dist.packagetype == "bdist_wheel":
                metadata_name = f"{dist.filename}.metadata"
                blobs.append(await store_bytes(self.store, metadata_name, checked.core.content))
            await anyio.to_thread.run_sync(self._record, checked, blobs, datetime.now(UTC))
        except IntegrityError:
            # Another writer added this very file (or project) between our
            # check and our commit: answered as if it had come first.
            await remove_unreferenced(self.sessions, self.store, blobs)
            if await anyio.to_thread.run_sync(self.uploads.is_present, dist, digests):
                return ImportResult(path, "present", "already present")
            raise
        except BaseException:
            await remove_unreferenced(self.sessions, self.store, blobs)
            raise
        created = dist.name if checked.is_new else None
        if checked.public_name is not None:
            note = f"imported with --allow-public-names although: {checked.public_name}"
            return ImportResult(path, "added", note, created)
        return ImportResult(path, "added", created=created)

    async def _check(self, path: Path) -> _Checked:
        """Steps 1 and 2 of the module docstring."""
        dist = parse_filename(path.name)  # its message shows an unprintable name escaped
        check_filename_characters(path.name)
        limits = self.rules.limits
        if (await anyio.Path(path).stat()).st_size > limits.max_file_size:
            raise file_too_large(dist.name, limits.max_file_size)
        core = await anyio.to_thread.run_sync(
            partial(
                read_archive_metadata,
                path,
                dist,
                self.archive_limits,
                limits.max_description_bytes,
            )
        )
        metadata = validate_file_metadata(core.content)
        pyversion = "source" if dist.packagetype == "sdist" else dist.python_version
        form = UploadForm(raw={}, filetype=dist.packagetype, pyversion=pyversion, digests={})
        validate_file(path.name, form, metadata)
        is_new = await anyio.to_thread.run_sync(self._is_new, dist.name)
        public_name = await self._check_name(metadata.name) if is_new else None
        return _Checked(dist, metadata, core, is_new, public_name)

    async def _check_name(self, name: str) -> str | None:
        """The name guard on a new project's name. Returns None, or, under
        `allow_public_names`, the refusal it overrode (audited)."""
        if not self.rules.allow_public_names:
            await self.guard.check(name)
            return None
        check_new_name(name)
        try:
            await self.guard.check_public(name)
        except PackyardError as exc:
            return exc.message
        return None

    def _is_new(self, name: str) -> bool:
        """Raises InvalidRequest for an archived or quarantined project."""
        with self.sessions() as session:
            project = session.scalar(select(Project).where(Project.name == name))
        if project is not None and project.status in CLOSED_STATUSES:
            raise closed_project(project)
        return project is None

    def _record(self, checked: _Checked, blobs: list[StoredBlob], now: datetime) -> None:
        """Step 4, one transaction.

        Raises:
            InvalidRequest: the project was closed, or the filename deleted, meanwhile.
            IntegrityError: the filename, the bytes or the project were stored meanwhile.
            SQLAlchemyError: the database failed.
        """
        dist, rules = checked.dist, self.rules
        with self.sessions.begin() as session:
            bump_serial(session)  # the write lock first, as the upload service does
            refuse_deleted_filename(session, dist.filename)
            project = self._project_for(session, checked, now)
            session.add(file_row(project, dist, checked.core, blobs, now))
            session.flush()
            # Its requirements, checked against the advisories by the next
            # advisory import (a check per file would slow a bulk import).
            requirements = read_requirements(checked.core.content)
            record_release(session, project.name, str(dist.version), requirements, (), now)
            if checked.public_name is not None:
                record(
                    session,
                    actor=rules.actor.actor,
                    action="name-guard-override",
                    origin=rules.origin,
                    project=project.name,
                    reason=checked.public_name,
                )
            record(
                session,
                actor=rules.actor.actor,
                action="import",
                origin=rules.origin,
                project=project.name,
                version=str(dist.version),
                filename=dist.filename,
                sha256=blobs[0].sha256,
                size=blobs[0].size,
            )

    def _project_for(self, session: Session, checked: _Checked, now: datetime) -> Project:
        name = checked.dist.name
        project = session.scalar(select(Project).where(Project.name == name))
        if project is not None:
            if project.status in CLOSED_STATUSES:
                raise closed_project(project)
            return project
        if not checked.is_new:
            raise Conflict(f"The project {name!r} was deleted meanwhile: import the file again.")
        project = Project(name=name, display_name=checked.core.name, created_at=now)
        session.add(project)
        owner = find_owner(session, self.rules.owner) if self.rules.owner else None
        give_new_project(session, self.rules.actor, project, owner, origin=self.rules.origin)
        return project

    async def _audit_refusal(self, path: Path, message: str) -> None:
        """The refusal in the audit trail, in a transaction of its own; a
        database that fails here does not hide the refusal from the report."""
        project: str | None = None
        version: str | None = None
        try:
            dist = parse_filename(path.name)
            project, version = dist.name, str(dist.version)
        except PackyardError:
            pass
        rules = self.rules

        def write() -> None:
            with self.sessions.begin() as session:
                record(
                    session,
                    actor=rules.actor.actor,
                    action="import",
                    outcome="refused",
                    origin=rules.origin,
                    project=project,
                    version=version,
                    filename=path.name,
                    reason=message,
                )

        with contextlib.suppress(SQLAlchemyError):
            await anyio.to_thread.run_sync(write)


def _shown(path: Path) -> str:
    """The file's name, escaped if it holds what a terminal would act on."""
    return path.name if path.name.isprintable() else repr(path.name)[1:-1]


async def _copy(path: Path, writer: BlobWriter) -> None:
    async with await anyio.open_file(path, "rb") as source:
        while chunk := await source.read(COPY_CHUNK_SIZE):
            await writer.write(chunk)
