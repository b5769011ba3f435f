"""`PageStore`: where upstream project pages and the project list are kept.

Two implementations of one Protocol, side by side:

- `FilesystemPageStore`, when storage is the local filesystem: one JSON file
  per project (`<root>/<name>.json`) and one for the project list
  (`<root>/_project-list.json`; `_` can never start a normalised name). Each
  file is written whole under a temporary name and renamed into place
  (`os.replace`), so a reader, in this process or another worker, sees the
  old page or the new one, never half of one. The file's modification time
  *is* the page's fetch time: an unchanged revalidation then costs a `utime`,
  not a rewrite of a page that may list thousands of files. A page never
  fetched costs one `stat`, cheap enough for the event loop.
- `SharedPageStore`, when blobs are shared by replicas (S3): the page's JSON
  is a content-addressed blob of the blob store, and a row of the table
  `cached_pages` (upstream, name, blob key, sha256, fetch time) points at it,
  so a replica with an empty data directory serves what the others fetched
  (DESIGN §3). An unchanged revalidation updates the row's fetch time only;
  a replaced page's old blob is deleted unless another row points at it.
  Whether a page is kept is answered on the event loop from the set of
  names this upstream had in the table when the store first looked (one
  query), kept up to date with this process's own saves and loads: asking
  the database instead (a worker-thread hop and a query) would cost each
  never-fetched page 0.5-0.6 ms on SQLite and 1.2-1.6 ms on PostgreSQL; the
  set costs 1 µs (a stat, 12 µs). A name kept by another replica since then
  reads as absent: `CacheRepository` fetches it, and loads it after all if
  the upstream fails.

The methods block (file or database I/O); `CacheRepository` runs them in
worker threads. A page that cannot be read back (damaged, or of another
format version) is treated as absent, with a warning: the upstream is asked
again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import anyio.from_thread
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import CachedPage, upsert
from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus
from packyard.storage.base import BlobStore

logger = logging.getLogger(__name__)

FORMAT = 1
LIST_FILE = "_project-list.json"
LIST_NAME = "_project-list"  # the project list's row in `cached_pages`
# Normalised names only (NN): never a separator, never `.`/`..`.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredPage(Generic[T]):
    """A page read back from disk, with the wall-clock time it was fetched."""

    value: T
    fetched_at: float


class PageStore(Protocol):
    """The kept pages of one upstream. Every method but `has_project` may block."""

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """The kept page of `name`, or None if there is none (or it is unreadable).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be read (shared store).
        """
        ...

    def has_project(self, name: str) -> bool:
        """Whether a page of `name` is kept, as far as the store can tell without blocking.

        Called on the event loop before `load_project`, so it must not block.
        False may be out of date in a store that other processes write (the
        shared store: a page another replica kept since this one last looked);
        `CacheRepository` then fetches the page, and loads it after all if
        the upstream fails.
        """
        ...

    def save_project(self, name: str, detail: ProjectDetail, fetched_at: float) -> None:
        """Keep `detail` as fetched at `fetched_at` (seconds since the epoch).

        Raises:
            ValueError: `name` is not a normalised project name.
            OSError, sqlalchemy.exc.SQLAlchemyError: the page could not be
                written; the previous one is intact.
        """
        ...

    def load_list(self) -> StoredPage[ProjectList] | None:
        """The kept project list, or None. Raises as `load_project`."""
        ...

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """Keep the project list. Raises OSError or SQLAlchemyError as `save_project`."""
        ...

    def touch(self, name: str | None, fetched_at: float) -> None:
        """Record a revalidation that found the page (None: the list) unchanged.

        Raises:
            ValueError: `name` is not a normalised project name.
            OSError, sqlalchemy.exc.SQLAlchemyError: the time could not be set
                (the filesystem store: also when the page is gone).
        """
        ...

    def delete_project(self, name: str) -> None:
        """Forget the page of a project the upstream no longer has.

        Raises:
            OSError, sqlalchemy.exc.SQLAlchemyError: the page could not be removed.
        """
        ...


class FilesystemPageStore:
    """A `PageStore` of one upstream under `root` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """The kept page of `name`, or None if there is none (or it is unreadable)."""
        path = self._project_path(name)
        raw = _read(path) if path is not None else None
        return None if raw is None else _project_page(*raw, where=path)

    def has_project(self, name: str) -> bool:
        """Whether a page of `name` is kept (one `stat`: cheap enough for the event loop)."""
        path = self._project_path(name)
        return path is not None and path.is_file()

    def save_project(self, name: str, detail: ProjectDetail, fetched_at: float) -> None:
        """Keep `detail` as fetched at `fetched_at` (seconds since the epoch).

        Raises:
            ValueError: `name` is not a normalised project name.
            OSError: the file could not be written; the previous one is intact.
        """
        _write(self._checked_path(name), _project_content(detail), fetched_at)

    def load_list(self) -> StoredPage[ProjectList] | None:
        """The kept project list, or None."""
        path = self.root / LIST_FILE
        raw = _read(path)
        return None if raw is None else _list_page(*raw, where=path)

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """Keep the project list. Raises OSError as `save_project`."""
        _write(self.root / LIST_FILE, _list_content(projects), fetched_at)

    def touch(self, name: str | None, fetched_at: float) -> None:
        """Record a revalidation that found the page (None: the list) unchanged.

        Raises:
            OSError: the file is gone or its time could not be set.
        """
        path = self.root / LIST_FILE if name is None else self._checked_path(name)
        os.utime(path, (fetched_at, fetched_at))

    def delete_project(self, name: str) -> None:
        """Forget the page of a project the upstream no longer has.

        Raises:
            OSError: the file exists but could not be removed.
        """
        path = self._project_path(name)
        if path is not None:
            path.unlink(missing_ok=True)

    def _project_path(self, name: str) -> Path | None:
        return self.root / f"{name}.json" if _NAME.fullmatch(name) else None

    def _checked_path(self, name: str) -> Path:
        path = self._project_path(name)
        if path is None:
            raise ValueError(f"not a normalised project name: {name!r}")
        return path


class SharedPageStore:
    """A `PageStore` of one upstream in the shared store: blobs in `store`, rows in
    `cached_pages` (`upstream` is the upstream's slug, `repository.cache.upstream_slug`).

    Its methods block on the database and must run in a worker thread started
    by anyio (`CacheRepository` does): the blob store's async calls are made
    from there on the event loop (`anyio.from_thread.run`).

    Several replicas at once: saves of one page upsert its row (`ON CONFLICT`),
    so none fails; the last one wins. A blob is written before a row points at
    it, and a row is repointed (committed) before the blob it left is deleted,
    if no other row points at it. A blob that a concurrent save was about to
    point at may so be deleted; that page then reads as absent and is fetched
    again.
    """

    def __init__(self, sessions: sessionmaker[Session], store: BlobStore, upstream: str) -> None:
        self._sessions = sessions
        self._store = store
        self.upstream = upstream
        # Names with a row, as of the first load and this process's own writes
        # since (set operations are atomic: worker threads write, the loop reads).
        self._known: set[str] | None = None

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """See `PageStore.load_project`."""
        if self._known is None:
            self._known = self._names()
        raw = self._read(name) if _NAME.fullmatch(name) else None
        return None if raw is None else _project_page(*raw, where=self._where(name))

    def has_project(self, name: str) -> bool:
        """See `PageStore.has_project`: True until the names were first read (by
        `load_project`), then whether this process has seen a row of `name`."""
        known = self._known
        return _NAME.fullmatch(name) is not None and (known is None or name in known)

    def save_project(self, name: str, detail: ProjectDetail, fetched_at: float) -> None:
        """See `PageStore.save_project`."""
        self._write(_checked(name), _project_content(detail), fetched_at)

    def load_list(self) -> StoredPage[ProjectList] | None:
        """See `PageStore.load_list`."""
        raw = self._read(LIST_NAME)
        return None if raw is None else _list_page(*raw, where=self._where(LIST_NAME))

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """See `PageStore.save_list`."""
        self._write(LIST_NAME, _list_content(projects), fetched_at)

    def touch(self, name: str | None, fetched_at: float) -> None:
        """See `PageStore.touch`: the row's fetch time only; nothing if there is no row."""
        with self._sessions.begin() as session:
            session.execute(
                update(CachedPage)
                .where(*self._row(LIST_NAME if name is None else _checked(name)))
                .values(fetched_at=fetched_at)
            )

    def delete_project(self, name: str) -> None:
        """See `PageStore.delete_project`."""
        if not _NAME.fullmatch(name):
            return
        with self._sessions.begin() as session:
            key = session.scalar(
                delete(CachedPage).where(*self._row(name)).returning(CachedPage.blob_key)
            )
            if key is None or _pointed_at(session, key):
                key = None
        self._seen(name, False)
        if key is not None:  # after the commit: no row points at it
            anyio.from_thread.run(self._store.delete, key)

    def _read(self, name: str) -> tuple[dict[str, Any], float] | None:
        with self._sessions() as session:
            row = session.execute(
                select(CachedPage.blob_key, CachedPage.sha256, CachedPage.fetched_at).where(
                    *self._row(name)
                )
            ).one_or_none()
        self._seen(name, row is not None)
        if row is None:
            return None
        try:
            data = anyio.from_thread.run(self._read_blob, row.blob_key)
        except OSError as exc:  # FileNotFoundError too: deleted by a concurrent save
            logger.warning("ignoring the unreadable cached page %s: %s", self._where(name), exc)
            return None
        if hashlib.sha256(data).hexdigest() != row.sha256:
            logger.warning("ignoring the cached page %s: sha256 mismatch", self._where(name))
            return None
        raw = _parse(data, self._where(name))
        return None if raw is None else (raw, row.fetched_at)

    async def _read_blob(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self._store.read(key, None)])

    def _write(self, name: str, content: dict[str, Any], fetched_at: float) -> None:
        data = json.dumps({"format": FORMAT, **content}, separators=(",", ":")).encode()
        # Not durable: a page lost in a crash reads as damaged, hence absent, and is fetched again.
        put = partial(self._store.put, f"{name}.json", data, durable=False)
        blob = anyio.from_thread.run(put)
        left = self._point(name, blob.key, blob.sha256, fetched_at)
        self._seen(name, True)
        if left is not None:
            anyio.from_thread.run(self._store.delete, left)

    def _point(self, name: str, key: str, sha256: str, fetched_at: float) -> str | None:
        """Point the row of `name` at `key`; the key it left, if no row points there now."""
        with self._sessions.begin() as session:
            # A write first: it locks the row (PostgreSQL) or the database (SQLite)
            # before the old key is read, so concurrent saves take turns.
            row = {"upstream": self.upstream, "name": name, "fetched_at": fetched_at}
            insert = upsert(session, CachedPage).values(**row, blob_key=key, sha256=sha256)
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["upstream", "name"],
                    set_={"fetched_at": insert.excluded.fetched_at},
                )
            )
            old = session.scalar(select(CachedPage.blob_key).where(*self._row(name)))
            if old is None or old == key:
                return None
            session.execute(
                update(CachedPage).where(*self._row(name)).values(blob_key=key, sha256=sha256)
            )
            return None if _pointed_at(session, old) else old

    def _names(self) -> set[str]:
        with self._sessions() as session:
            names = session.scalars(
                select(CachedPage.name).where(CachedPage.upstream == self.upstream)
            )
            return set(names)

    def _seen(self, name: str, kept: bool) -> None:
        if self._known is not None and name != LIST_NAME:
            if kept:
                self._known.add(name)
            else:
                self._known.discard(name)

    def _row(self, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return CachedPage.upstream == self.upstream, CachedPage.name == name

    def _where(self, name: str) -> str:
        return f"{self.upstream}/{name}"


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a normalised project name: {name!r}")
    return name


def _pointed_at(session: Session, key: str) -> bool:
    """Whether a row of `cached_pages` points at the blob `key`."""
    found = session.scalar(select(CachedPage.name).where(CachedPage.blob_key == key).limit(1))
    return found is not None


def _read(path: Path) -> tuple[dict[str, Any], float] | None:
    """The JSON object in `path` and its mtime; None if absent or unreadable."""
    try:
        with path.open("rb") as file:
            fetched_at = os.fstat(file.fileno()).st_mtime
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", path, exc)
        return None
    raw = _parse(data, path)
    return None if raw is None else (raw, fetched_at)


def _parse(data: bytes, where: object) -> dict[str, Any] | None:
    """The JSON object of a kept page, if it is one of this format version."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", where, exc)
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        logger.warning("ignoring the cached page %s: not of format %d", where, FORMAT)
        return None
    return raw


def _project_page(
    raw: Mapping[str, Any], fetched_at: float, where: object
) -> StoredPage[ProjectDetail] | None:
    try:
        return StoredPage(_decode_detail(raw["detail"]), fetched_at)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", where, exc)
        return None


def _list_page(
    raw: Mapping[str, Any], fetched_at: float, where: object
) -> StoredPage[ProjectList] | None:
    try:
        names = raw["projects"]
        return StoredPage(ProjectList(tuple(ProjectEntry(str(n)) for n in names)), fetched_at)
    except (KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable cached project list %s: %s", where, exc)
        return None


def _project_content(detail: ProjectDetail) -> dict[str, Any]:
    return {"detail": _encode_detail(detail)}


def _list_content(projects: ProjectList) -> dict[str, Any]:
    return {"projects": [entry.name for entry in projects.projects]}


def _write(path: Path, content: dict[str, Any], fetched_at: float) -> None:
    """Write `content` to `path` atomically, with `fetched_at` as its mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: mode 0600, since upstream file URLs may carry the upstream's credentials.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"format": FORMAT, **content}, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.utime(temp, (fetched_at, fetched_at))
        Path(temp).replace(path)  # os.replace: atomic on POSIX and Windows
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _encode_detail(detail: ProjectDetail) -> dict[str, Any]:
    return {
        "name": detail.name,
        "versions": list(detail.versions),
        "status": {"status": detail.status.status, "reason": detail.status.reason},
        "source": detail.source,
        "private": dict(detail.private),
        "files": [_encode_file(dist) for dist in detail.files],
    }


def _encode_file(dist: DistFile) -> dict[str, Any]:
    core = dist.core_metadata
    return {
        "filename": dist.filename,
        "url": dist.url,
        "hashes": dict(dist.hashes),
        "requires_python": dist.requires_python,
        "core_metadata": core if isinstance(core, bool) else dict(core),
        "yanked": dist.yanked,
        "size": dist.size,
        "upload_time": dist.upload_time.isoformat() if dist.upload_time else None,
        "provenance": dist.provenance,
        "gpg_sig": dist.gpg_sig,
    }


def _decode_detail(raw: Mapping[str, Any]) -> ProjectDetail:
    status = raw["status"]
    return ProjectDetail(
        name=str(raw["name"]),
        files=tuple(_decode_file(item) for item in raw["files"]),
        versions=tuple(str(v) for v in raw["versions"]),
        status=ProjectStatus(str(status["status"]), status["reason"]),
        source=str(raw["source"]),
        private=dict(raw["private"]),
    )


def _decode_file(raw: Mapping[str, Any]) -> DistFile:
    core = raw["core_metadata"]
    upload_time = raw["upload_time"]
    return DistFile(
        filename=str(raw["filename"]),
        url=str(raw["url"]),
        hashes={str(k): str(v) for k, v in raw["hashes"].items()},
        requires_python=raw["requires_python"],
        core_metadata=core if isinstance(core, bool) else {str(k): str(v) for k, v in core.items()},
        yanked=raw["yanked"],
        size=raw["size"],
        upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
        provenance=raw["provenance"],
        gpg_sig=raw["gpg_sig"],
    )
