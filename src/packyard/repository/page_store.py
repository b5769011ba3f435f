"""`PageStore`: where upstream project pages and the project list are kept.

Two implementations of one Protocol: this module's, and `shared_page_store`'s:

- `FilesystemPageStore`, when storage is the local filesystem: one JSON file
  per project (`<root>/<name>.json`) and one for the project list
  (`<root>/_project-list.json`; `_` can never start a normalised name). Each
  file is written whole under a temporary name and renamed into place
  (`os.replace`), so a reader, in this process or another worker, sees the
  old page or the new one, never half of one. The file's modification time
  *is* the page's fetch time: an unchanged revalidation then costs a `utime`,
  not a rewrite of a page that may list thousands of files. A page never
  fetched costs one `stat`, cheap enough for the event loop.
- `shared_page_store.SharedPageStore`, when blobs are shared by replicas
  (S3): blobs and rows of the database, for every replica.

The methods block (file or database I/O); `CacheRepository` runs them in
worker threads. A page that cannot be read back (damaged, or of another
format version) is treated as absent, with a warning: the upstream is asked
again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from packyard.model import ProjectDetail, ProjectList
from packyard.repository.page_codec import (
    FORMAT,
    NAME,
    StoredPage,
    list_content,
    list_page,
    parse_page,
    project_content,
    project_page,
)
from packyard.storage.full import storing

logger = logging.getLogger(__name__)

LIST_FILE = "_project-list.json"


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
        self._place = f"the page cache {self.root}"

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """The kept page of `name`, or None if there is none (or it is unreadable)."""
        path = self._project_path(name)
        raw = _read(path) if path is not None else None
        return None if raw is None else project_page(*raw, where=path)

    def has_project(self, name: str) -> bool:
        """Whether a page of `name` is kept (one `stat`: cheap enough for the event loop)."""
        path = self._project_path(name)
        return path is not None and path.is_file()

    def save_project(self, name: str, detail: ProjectDetail, fetched_at: float) -> None:
        """Keep `detail` as fetched at `fetched_at` (seconds since the epoch).

        Raises:
            ValueError: `name` is not a normalised project name.
            StorageFull: the disk is full; the previous file is intact.
            OSError: the file could not be written; the previous one is intact.
        """
        path = self._checked_path(name)
        with storing(self._place, path.name):
            _write(path, project_content(detail), fetched_at)

    def load_list(self) -> StoredPage[ProjectList] | None:
        """The kept project list, or None."""
        path = self.root / LIST_FILE
        raw = _read(path)
        return None if raw is None else list_page(*raw, where=path)

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """Keep the project list. Raises StorageFull or OSError as `save_project`."""
        with storing(self._place, LIST_FILE):
            _write(self.root / LIST_FILE, list_content(projects), fetched_at)

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
        return self.root / f"{name}.json" if NAME.fullmatch(name) else None

    def _checked_path(self, name: str) -> Path:
        path = self._project_path(name)
        if path is None:
            raise ValueError(f"not a normalised project name: {name!r}")
        return path


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
    raw = parse_page(data, path)
    return None if raw is None else (raw, fetched_at)


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
