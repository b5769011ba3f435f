"""The in-house store as a source of the read path: the database and the blob store.

Pages are built once per change of the store and kept in memory: while the
serial (`db.serial`) stays the same, `get_project` returns the very object it
returned before, so the HTTP edge reuses the page it rendered; the check is
the `SerialWatcher`'s, a few microseconds on SQLite. After a change a page is
rebuilt, and if it came out equal to the old one the old object is kept.

Database calls are synchronous SQLAlchemy, run in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread
from packaging.version import Version
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import override

from packyard.db.freshness import PerSerial, SerialWatcher, watcher_for
from packyard.db.governance import AllowedName
from packyard.db.models import File, Project
from packyard.errors import DatabaseUnavailable, FileNotFound, ProjectNotFound
from packyard.model import (
    SOURCE_LOCAL,
    DistFile,
    ProjectDetail,
    ProjectEntry,
    ProjectList,
    ProjectStatus,
    RequestContext,
    Resource,
    StoredFile,
)
from packyard.repository.base import Repository
from packyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class _Page:
    serial: int
    detail: ProjectDetail
    files: dict[str, StoredFile]


@dataclass(frozen=True, slots=True)
class _Index:
    listing: ProjectList
    names: frozenset[str]


class LocalRepository(Repository):
    """Projects uploaded or imported here (`SOURCE_LOCAL`).

    `get_file` serves the distribution files themselves; `<wheel>.metadata`
    is `MetadataRepository`'s (it reads the METADATA blob this store keeps).
    A quarantined project (PEP 792) keeps its page, with its status and no
    files, and serves no file: its name stays owned here, so no upstream
    release of it can appear instead.

    A project with no file left (every release deleted) is not a project of
    this source, so the upstream project of its name is served instead
    (`PriorityRepository`), unless an admin said the name stays in-house:
    it is on the allow-list (`packyard name allow`), or the project is
    quarantined. See `owns_name`.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        store: BlobStore,
        *,
        watcher: SerialWatcher | None = None,
    ) -> None:
        """`watcher` defaults to `open_serial_watcher` on the sessions' engine,
        which this repository then owns and closes in `aclose`.

        Raises:
            TypeError: no watcher is given and the factory is not bound to an Engine.
        """
        self._sessions = session_factory
        self._store = store
        self._watcher, self._owns_watcher = watcher_for(session_factory, watcher)
        self._index = PerSerial(self._watcher, self._load_index, _same_listing)
        self._pages: dict[str, _Page] = {}

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        """Every project of the store, by display name, sorted by normalised name."""
        return (await self._index.current()).listing

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """See `Repository.get_project`. Raises ProjectNotFound."""
        return (await self._current_page(name)).detail

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """The stored distribution file. Raises ProjectNotFound, FileNotFound."""
        page = await self._current_page(name)
        try:
            return page.files[filename]
        except KeyError:
            raise FileNotFound(name, filename) from None

    @override
    async def aclose(self) -> None:
        if self._owns_watcher:
            self._watcher.close()

    async def _current_page(self, name: str) -> _Page:
        serial = await self._watcher.current()
        page = self._pages.get(name)
        if page is not None and page.serial == serial:
            return page
        # Most names asked for here are upstream projects: answer those from
        # the cached name set, without a query per name.
        if name not in (await self._index.current()).names:
            self._pages.pop(name, None)
            raise ProjectNotFound(name)
        try:
            fresh = await anyio.to_thread.run_sync(self._load_page, name, serial)
        except DatabaseUnavailable:
            if page is None:
                raise
            # As `PerSerial` does: the database went away between the last write
            # and this load, so the page loaded last is served meanwhile.
            return page
        if fresh is None:
            raise ProjectNotFound(name)
        if page is not None and page.detail == fresh.detail:
            fresh = _Page(serial, page.detail, page.files)
        self._pages[name] = fresh
        return fresh

    def _load_index(self) -> _Index:
        with self._sessions() as session:
            rows = session.execute(
                select(Project.name, Project.display_name).where(owns_name()).order_by(Project.name)
            ).all()
        listing = ProjectList(tuple(ProjectEntry(display) for _, display in rows))
        return _Index(listing, frozenset(name for name, _ in rows))

    def _load_page(self, name: str, serial: int) -> _Page | None:
        with self._sessions() as session:
            project = session.scalar(select(Project).where(Project.name == name))
            if project is None:
                return None
            files = session.scalars(select(File).where(File.project_id == project.id)).all()
        return _build_page(project, files, serial, self._store)


PROVENANCE_STORED = "files.provenance"
"""`DistFile.provenance` of an in-house file whose verified provenance is stored."""


def owns_name() -> ColumnElement[bool]:
    """SQL: the project holds its name here, hiding any upstream project of it:
    it has a file, or an admin kept the name in-house (allow-list, quarantine)."""
    return or_(
        exists().where(File.project_id == Project.id),
        Project.name.in_(select(AllowedName.name)),
        Project.status == "quarantined",
    )


def _build_page(project: Project, rows: Sequence[File], serial: int, store: BlobStore) -> _Page:
    status = ProjectStatus(project.status, project.status_reason)
    if status.status == "quarantined":
        rows = []  # PEP 792: a quarantined project MUST NOT offer downloads
    ordered = sorted(rows, key=lambda row: (Version(row.version), row.filename))
    detail = ProjectDetail(
        name=project.name,
        files=tuple(_dist_file(row) for row in ordered),
        versions=tuple(sorted({row.version for row in ordered}, key=Version)),
        status=status,
        source=SOURCE_LOCAL,
    )
    files = {
        row.filename: StoredFile(
            filename=row.filename,
            key=row.blob_key,
            size=row.size,
            sha256=row.sha256,
            store=store,
            modified=row.upload_time,
        )
        for row in ordered
    }
    return _Page(serial, detail, files)


def _dist_file(row: File) -> DistFile:
    return DistFile(
        filename=row.filename,
        hashes={"sha256": row.sha256},
        requires_python=row.requires_python,
        # PEP 658/714: advertise the METADATA file with its hash when we have it.
        core_metadata={"sha256": row.metadata_sha256} if row.metadata_sha256 else False,
        # PEP 592: a reason when there is one, else plain True.
        yanked=(row.yanked_reason or True) if row.yanked else False,
        # PEP 740: served at /integrity/…; the value is this file's provenance route.
        provenance=PROVENANCE_STORED if row.provenance_publisher else None,
        size=row.size,
        upload_time=row.upload_time,
    )


def _same_listing(kept: _Index, fresh: _Index) -> _Index:
    """The kept index while the listing is unchanged: the list page keeps its identity."""
    return kept if kept.listing == fresh.listing else fresh
