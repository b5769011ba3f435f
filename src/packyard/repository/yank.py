"""PEP 592 yanks decided here, applied to the pages of upstream projects.

In-house files keep their yank in `files.yanked` and `LocalRepository` shows
it itself. A file packyard does not store (an upstream's) is yanked by a
`YankOverride` row (`publish/yanks.py` writes them): a whole release when the
row has no filename, else that one file. This component marks the matching
files of a page yanked, with the override's reason or `True`.

Removing a row ("unyank") simply stops the override: the page is the
upstream's again. An upstream's own yank is never removed here: a mirror MUST
keep `data-yanked` (STANDARDS §1.13, file-yanking spec).

Hot path: the overrides are loaded once per change of the store's serial
(`db.serial`, bumped in the same transaction as every override), as the
`SerialWatcher` tells, never per request. A page with no override passes
through as the very same object; a page with overrides gives the same output
object for the same input object and the same overrides (the identity rule of
`repository/base.py`), so the edge keeps its rendered bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import override

from packyard.db.freshness import PerSerial, SerialWatcher, watcher_for
from packyard.db.governance import YankOverride
from packyard.dists.filenames import parse_filename
from packyard.errors import InvalidDistribution
from packyard.model import SOURCE_LOCAL, DistFile, ProjectDetail, RequestContext
from packyard.repository.base import DelegatingRepository, Repository


@dataclass(frozen=True, slots=True)
class Override:
    """One yank override: of `filename`, or of every file of `version` when None."""

    version: str
    filename: str | None
    reason: str | None


Overrides = tuple[Override, ...]


@dataclass(frozen=True, slots=True)
class _Applied:
    source: ProjectDetail
    overrides: Overrides
    result: ProjectDetail


class YankRepository(DelegatingRepository):
    """Applies `yank_overrides` to pages whose `source` is not the local store.

    `list_projects` and `get_file` pass through: a yanked file stays
    downloadable (PEP 592: installers skip it, a pin can still fetch it).
    """

    def __init__(
        self,
        source: Repository,
        session_factory: sessionmaker[Session],
        *,
        watcher: SerialWatcher | None = None,
    ) -> None:
        """`watcher` defaults to `open_serial_watcher` on the sessions' engine,
        which this component then owns and closes in `aclose`.

        Raises:
            TypeError: no watcher is given and the factory is not bound to an Engine.
        """
        super().__init__(source)
        self._sessions = session_factory
        self._watcher, self._owns_watcher = watcher_for(session_factory, watcher)
        self._overrides = PerSerial(self._watcher, self._load)
        self._applied: dict[str, _Applied] = {}

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The source's page, with this site's yanks of upstream files applied.

        Raises:
            whatever the source raises (ProjectNotFound, UpstreamError, ...);
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the overrides cannot be read.
        """
        detail = await self.source.get_project(name, ctx)
        if detail.source == SOURCE_LOCAL:
            return detail  # in-house yanks are in `files.yanked` already
        overrides = (await self._overrides.current()).get(name, ())
        if not overrides:
            self._applied.pop(name, None)
            return detail
        applied = self._applied.get(name)
        if applied is not None and applied.source is detail and applied.overrides == overrides:
            return applied.result
        result = apply_overrides(detail, overrides)
        self._applied[name] = _Applied(detail, overrides, result)
        return result

    @override
    async def aclose(self) -> None:
        if self._owns_watcher:
            self._watcher.close()
        await super().aclose()

    def _load(self) -> Mapping[str, Overrides]:
        with self._sessions() as session:
            rows = session.execute(
                select(
                    YankOverride.project_name,
                    YankOverride.version,
                    YankOverride.filename,
                    YankOverride.reason,
                ).order_by(YankOverride.id)
            ).all()
        by_project: dict[str, list[Override]] = {}
        for project, version, filename, reason in rows:
            by_project.setdefault(project, []).append(Override(version, filename, reason))
        return {name: tuple(items) for name, items in by_project.items()}


def apply_overrides(detail: ProjectDetail, overrides: Overrides) -> ProjectDetail:
    """`detail` with the files `overrides` name marked yanked; `detail` itself if none match.

    A file override wins over a release override of the same file. The
    override's reason replaces the upstream's; without a reason, an upstream
    reason is kept, else the file is yanked with `True` (PEP 592).
    """
    by_file = {o.filename: o for o in overrides if o.filename is not None}
    by_release = {_version_key(o.version): o for o in overrides if o.filename is None}
    changed = False
    files: list[DistFile] = []
    for dist in detail.files:
        found = by_file.get(dist.filename)
        if found is None and (version := _file_version(dist.filename)) is not None:
            found = by_release.get(version)
        yanked = dist.yanked
        if found is not None:
            yanked = found.reason or dist.yanked or True
        if yanked != dist.yanked:
            changed = True
            dist = dataclasses.replace(dist, yanked=yanked)
        files.append(dist)
    return dataclasses.replace(detail, files=tuple(files)) if changed else detail


def _version_key(version: str) -> Version | str:
    """Versions compare as PEP 440 versions (`2.0` == `2`); unparsable ones as text."""
    try:
        return Version(version)
    except InvalidVersion:
        return version


def _file_version(filename: str) -> Version | None:
    """The version a wheel's or sdist's filename carries; None for other files."""
    try:
        return parse_filename(filename).version
    except InvalidDistribution:
        return None
