"""`PageStore`: upstream project pages and the project list, kept on disk.

One JSON file per project (`<root>/<name>.json`) and one for the project
list (`<root>/_project-list.json`; `_` can never start a normalised name).
Each file is written whole under a temporary name and renamed into place
(`os.replace`), so a reader, in this process or another worker, sees the old
page or the new one, never half of one. The file's modification time *is* the
page's fetch time: an unchanged revalidation then costs a `utime`, not a
rewrite of a page that may list thousands of files.

The functions here block (file I/O); `CacheRepository` runs them in worker
threads. A file that cannot be read back (damaged, or of another format
version) is treated as absent, with a warning: the upstream is asked again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus

logger = logging.getLogger(__name__)

FORMAT = 1
LIST_FILE = "_project-list.json"
# Normalised names only (NN): never a separator, never `.`/`..`.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredPage(Generic[T]):
    """A page read back from disk, with the wall-clock time it was fetched."""

    value: T
    fetched_at: float


class PageStore:
    """Pages of one upstream under `root` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """The kept page of `name`, or None if there is none (or it is unreadable)."""
        path = self._project_path(name)
        raw = _read(path) if path is not None else None
        if raw is None:
            return None
        try:
            return StoredPage(_decode_detail(raw[0]["detail"]), raw[1])
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("ignoring the unreadable cached page %s: %s", path, exc)
            return None

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
        _write(self._checked_path(name), {"detail": _encode_detail(detail)}, fetched_at)

    def load_list(self) -> StoredPage[ProjectList] | None:
        """The kept project list, or None."""
        path = self.root / LIST_FILE
        raw = _read(path)
        if raw is None:
            return None
        try:
            names = raw[0]["projects"]
            return StoredPage(ProjectList(tuple(ProjectEntry(str(n)) for n in names)), raw[1])
        except (KeyError, TypeError) as exc:
            logger.warning("ignoring the unreadable cached project list %s: %s", path, exc)
            return None

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """Keep the project list. Raises OSError as `save_project`."""
        names = [entry.name for entry in projects.projects]
        _write(self.root / LIST_FILE, {"projects": names}, fetched_at)

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


def _read(path: Path) -> tuple[dict[str, Any], float] | None:
    """The JSON object in `path` and its mtime; None if absent or unreadable."""
    try:
        with path.open("rb") as file:
            fetched_at = os.fstat(file.fileno()).st_mtime
            raw = json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", path, exc)
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        logger.warning("ignoring the cached page %s: not of format %d", path, FORMAT)
        return None
    return raw, fetched_at


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
