"""The hook that makes public projects searchable: it notes every upstream
project the chain serves a page for (DESIGN §1: the browser searches "every
project ever requested through the proxy").
"""

from __future__ import annotations

import logging

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import override

from packyard.model import SOURCE_LOCAL, ProjectDetail, RequestContext
from packyard.repository.base import DelegatingRepository, Repository
from packyard.search.index import SearchIndex

logger = logging.getLogger(__name__)


class SearchRecorder(DelegatingRepository):
    """Records the name and upstream of each public project page it passes on.

    It sits outermost in the chain, so it sees only what the chain really
    serves (after any policy). The page object is returned unchanged (the
    identity rule). A name is written once per process: later requests cost
    one set lookup, which keeps the index route's hot path hot. The recorder
    owns `index` and closes it with the chain.
    """

    def __init__(self, source: Repository, index: SearchIndex) -> None:
        super().__init__(source)
        self.index = index
        self._seen: dict[str, str] = {}

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """See `Repository.get_project`; recording never makes it fail."""
        detail = await self.source.get_project(name, ctx)
        if detail.source != SOURCE_LOCAL and self._seen.get(name) != detail.source:
            self._seen[name] = detail.source  # before the write: concurrent callers skip it
            try:
                await anyio.to_thread.run_sync(
                    self.index.record_public, name, detail.name, detail.source
                )
            except SQLAlchemyError:
                # The page is what matters; the name is recorded on a later request.
                logger.warning("could not record %r in the search index", name, exc_info=True)
                self._seen.pop(name, None)
        return detail

    @override
    async def aclose(self) -> None:
        try:
            await self.source.aclose()
        finally:
            self.index.close()
