"""The hook that makes public projects searchable: it notes every upstream
project the chain serves a page for (DESIGN §1: the browser searches "every
project ever requested through the proxy").

Recording is off the request's path: a page is served at once, and the names
met meanwhile are written in the background, many to a transaction, at most
`WRITE_DELAY` after they were met. A cold resolution asks for dozens of new
projects within a second; one database commit (an fsync) each, competing with
the requests for the same core, would cost more than serving the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import override

from packyard.errors import DatabaseUnavailable
from packyard.model import SOURCE_LOCAL, ProjectDetail, RequestContext
from packyard.repository.base import DelegatingRepository, Repository
from packyard.search.index import SearchIndex

logger = logging.getLogger(__name__)

WRITE_DELAY = 1.0
"""Seconds a newly met name waits, so that a burst of them shares one write."""


class SearchRecorder(DelegatingRepository):
    """Records the name and upstream of each public project page it passes on.

    It sits outermost in the chain, so it sees only what the chain really
    serves (after any policy). The page object is returned unchanged (the
    identity rule). A name is written once per process: later requests cost
    one dict lookup, which keeps the index route's hot path hot. The names
    of one event-loop turn, and those met while a write runs, go in one
    transaction. The recorder owns `index`: `aclose` writes what is still
    pending, then closes it.
    """

    def __init__(
        self, source: Repository, index: SearchIndex, *, write_delay: float = WRITE_DELAY
    ) -> None:
        super().__init__(source)
        self.index = index
        self._write_delay = write_delay
        self._seen: dict[str, str] = {}
        self._pending: dict[str, tuple[str, str]] = {}  # name -> (display name, source)
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set by `settle`: write without waiting

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """See `Repository.get_project`; recording never makes it fail or wait."""
        detail = await self.source.get_project(name, ctx)
        if detail.source != SOURCE_LOCAL and self._seen.get(name) != detail.source:
            self._seen[name] = detail.source
            self._pending[name] = (detail.name, detail.source)
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        return detail

    async def settle(self) -> None:
        """Write every name met so far now, and wait until it is written (or failed)."""
        self._wake.set()
        while self._writer is not None:
            await asyncio.shield(self._writer)

    @override
    async def aclose(self) -> None:
        try:
            await self.settle()
            await self.source.aclose()
        finally:
            self.index.close()

    async def _write_pending(self) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._write_delay)
            while self._pending:
                batch, self._pending = self._pending, {}
                rows = [(name, display, source) for name, (display, source) in batch.items()]
                try:
                    await anyio.to_thread.run_sync(self.index.record_public_many, rows)
                except DatabaseUnavailable:
                    pass  # in the fault log; the names are recorded on a later request
                except SQLAlchemyError:
                    # The pages were served; the names are recorded on a later request.
                    logger.warning("could not record %d names in the search index", len(rows))
                    for name in batch:
                        self._seen.pop(name, None)
        finally:
            self._writer = None
            self._wake.clear()
