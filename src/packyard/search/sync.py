"""Keeping the in-house part of the search index in step with the store.

The store's serial (`db.serial`) says when anything changed; then the
projects whose fingerprint moved are rebuilt from the chain (their newest
release's METADATA: summary, author, classifiers, dependencies) and the
projects that are gone are dropped. A change is seen by the first search or
page view at most `interval` seconds after it was committed. Download counts
from a `Popularity` source, when there is one, are copied into the index every
`popularity_interval` seconds (`search.popularity`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
from packaging.utils import canonicalize_name
from sqlalchemy.exc import SQLAlchemyError

from packyard.browser.catalog import LocalCatalog, ProjectState
from packyard.browser.loading import load_metadata
from packyard.browser.releases import build_releases, latest_release
from packyard.errors import PackyardError
from packyard.model import ANONYMOUS, SOURCE_LOCAL
from packyard.repository.base import Repository
from packyard.search.documents import SearchDocument, describe
from packyard.search.index import SearchIndex
from packyard.search.popularity import POPULARITY_INTERVAL, Popularity

logger = logging.getLogger(__name__)
DEFAULT_INTERVAL = 1.0


class InHouseSync:
    """Brings the index up to date with the store on `refresh()`.

    `index_names` (configuration) are recorded as public projects on the first
    refresh, so that they can be found before anyone has requested them.
    `popularity` (None: every project counts 0) is read on the first refresh
    and then at most once per `popularity_interval`.
    """

    def __init__(
        self,
        index: SearchIndex,
        catalog: LocalCatalog,
        chain: Repository,
        *,
        index_names: tuple[str, ...] = (),
        interval: float = DEFAULT_INTERVAL,
        popularity: Popularity | None = None,
        popularity_interval: float = POPULARITY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = index
        self._catalog = catalog
        self._chain = chain
        self._pending_names = index_names
        self._interval = interval
        self._clock = clock
        self._serial: int | None = None
        self._checked_at = float("-inf")
        self._popularity = popularity
        self._popularity_interval = popularity_interval
        self._counted_at = float("-inf")
        self._lock = anyio.Lock()

    async def refresh(self) -> None:
        """Update the index if the store changed since the last refresh.

        Concurrent callers wait for one update. Asks the database at most once
        per `interval`.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store or the index cannot be read.
        """
        if self._clock() - self._checked_at < self._interval:
            return
        async with self._lock:
            if self._clock() - self._checked_at < self._interval:
                return
            if self._pending_names:
                await anyio.to_thread.run_sync(self._record_names, self._pending_names)
                self._pending_names = ()
            serial = await anyio.to_thread.run_sync(self._catalog.serial)
            if serial != self._serial:
                await self._update()
                self._serial = serial
            await self._count_downloads()
            self._checked_at = self._clock()

    async def _count_downloads(self) -> None:
        """Copy the popularity source's counts into the index, when they are due."""
        if self._popularity is None:
            return
        if self._clock() - self._counted_at < self._popularity_interval:
            return
        try:
            counts = await anyio.to_thread.run_sync(self._popularity.downloads)
        except SQLAlchemyError:
            # Searches go on with the previous counts; the next interval tries again.
            logger.warning("could not read download counts for the search", exc_info=True)
        else:
            await anyio.to_thread.run_sync(self._index.set_downloads, counts)
        self._counted_at = self._clock()

    def _record_names(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._index.record_public(canonicalize_name(name), name, "")

    async def _update(self) -> None:
        states = await anyio.to_thread.run_sync(self._catalog.projects)
        known = await anyio.to_thread.run_sync(self._index.in_house_fingerprints)
        current = {state.name for state in states}
        documents = []
        for state in states:
            if known.get(state.name) != state.fingerprint:
                documents.append(await self._document(state))
        await anyio.to_thread.run_sync(self._index.upsert, documents)
        await anyio.to_thread.run_sync(self._index.remove, known.keys() - current)

    async def _document(self, state: ProjectState) -> SearchDocument:
        """The document of one in-house project, from its newest release's metadata.

        A project whose metadata cannot be read is still indexed by name.
        """
        plain = SearchDocument(
            state.name, state.display_name, SOURCE_LOCAL, fingerprint=state.fingerprint
        )
        try:
            detail = await self._chain.get_project(state.name, ANONYMOUS)
            release = latest_release(build_releases(detail))
            row = release.metadata_file() if release is not None else None
            meta = await load_metadata(self._chain, state.name, row) if row else None
        except PackyardError:
            logger.warning("could not index %r", state.name, exc_info=True)
            return plain
        if release is None or meta is None:
            return plain
        return describe(
            state.name,
            SOURCE_LOCAL,
            release.version,
            meta,
            display_name=state.display_name,
            fingerprint=state.fingerprint,
            yanked=release.yanked,
        )
