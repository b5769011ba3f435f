"""Usage counts for the dashboards: counted in memory, added to the database's
daily roll-ups every few seconds (`db/usage.py`).

A database write per download would cost more than serving a cached file, so
each worker keeps plain dicts (one event loop: no lock) and `UsageFlusher`
hands them to a thread that adds them to the day's rows every
`flush_seconds`, and once more at shutdown. A worker killed outright loses
what it counted since its last flush, a few seconds of counts at most
(docs/decisions.md). A flush that fails (the database down) keeps its counts
for the next one.

Days are UTC days, taken when the event is counted, not when it is flushed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import anyio
import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.usage import add_project_days, add_site_days

LOGGER = logging.getLogger("packyard.usage")
DEFAULT_FLUSH_SECONDS = 5.0

Clock = Callable[[], date]


def utc_today() -> date:
    return datetime.now(UTC).date()


class UsageCounts:
    """What one worker counted since its last flush.

    `clock` gives the UTC day an event counts on (tests move it).
    """

    def __init__(self, clock: Clock = utc_today) -> None:
        self._clock = clock
        self.projects: dict[tuple[date, str], int] = {}
        self.site: dict[date, dict[str, float]] = {}

    def _add(self, field: str, amount: float = 1) -> None:
        day = self._clock()
        values = self.site.get(day)
        if values is None:
            values = self.site[day] = {}
        values[field] = values.get(field, 0) + amount

    def download(self, project: str, cache_hit: bool) -> None:
        """A distribution file of `project` (normalised) sent; hit: from our store or cache."""
        key = (self._clock(), project)
        self.projects[key] = self.projects.get(key, 0) + 1
        self._add("downloads")
        self._add("cache_hits" if cache_hit else "cache_misses")

    def upload(self) -> None:
        """A file accepted by the upload service."""
        self._add("uploads")

    def upstream_error(self) -> None:
        """An upstream failed (unavailable, or answered with an error)."""
        self._add("upstream_errors")

    def upstream_latency(self, seconds: float) -> None:
        """An upstream answered a request's headers after `seconds`."""
        self._add("upstream_seconds", seconds)
        self._add("upstream_requests")

    def take(self) -> UsageCounts:
        """The counts so far, leaving these empty."""
        taken = UsageCounts(self._clock)
        taken.projects, self.projects = self.projects, {}
        taken.site, self.site = self.site, {}
        return taken

    def put_back(self, counts: UsageCounts) -> None:
        """Add `counts` (taken, then not written) back to these."""
        for key, n in counts.projects.items():
            self.projects[key] = self.projects.get(key, 0) + n
        for day, values in counts.site.items():
            mine = self.site.setdefault(day, {})
            for field, amount in values.items():
                mine[field] = mine.get(field, 0) + amount

    def __bool__(self) -> bool:
        return bool(self.projects or self.site)

    def write(self, session: Session) -> None:
        """Add these counts to the stored days, in `session`'s transaction.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the rows could not be written.
        """
        add_project_days(session, self.projects)
        add_site_days(session, self.site)


class UsageFlusher:
    """Adds a worker's `counts` to the database every `flush_seconds` while running."""

    def __init__(
        self,
        counts: UsageCounts,
        sessions: sessionmaker[Session],
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        self.counts = counts
        self._sessions = sessions
        self._seconds = flush_seconds

    def flush(self) -> bool:
        """Write what was counted so far, in the calling thread (tests, the CLI);
        False if the database refused it, whose counts then wait for the next flush."""
        taken = self.counts.take()
        written = self._write(taken)
        if not written:
            self.counts.put_back(taken)
        return written

    def _write(self, taken: UsageCounts) -> bool:
        if not taken:
            return True
        try:
            with self._sessions.begin() as session:
                taken.write(session)
        except SQLAlchemyError as exc:
            LOGGER.warning("usage counts not written, kept for the next flush: %s", exc)
            return False
        return True

    async def flush_async(self) -> None:
        """Take the counts on the event loop (the only thread that adds to them),
        write them in a worker thread."""
        taken = self.counts.take()
        if not await anyio.to_thread.run_sync(self._write, taken):
            self.counts.put_back(taken)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Flush periodically in the background; once more on the way out."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._loop)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await self.flush_async()

    async def _loop(self) -> None:
        while True:
            await anyio.sleep(self._seconds)
            await self.flush_async()
