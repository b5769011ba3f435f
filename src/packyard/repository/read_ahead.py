"""`ReadAhead`: the newest release's wheel metadata, read as soon as its page passes.

A resolver reads a project page and then, at once, the `.metadata` of the
wheel it picks, nearly always one of the newest release. On a cold cache that
second request waits for range reads of the upstream's wheel (DESIGN §2).
Starting them when the page goes by lets the client's own request join the
extraction already under way (`RemoteMetadataReader` runs one per wheel), or
find it done: a cold resolution then waits for one upstream round trip per
project instead of two.

Bounded, so that it never becomes a crawler: only the newest final release,
only when it has at most `MAX_WHEELS` wheels (which of 40 platform wheels a
client wants is its own choice), at most `CONCURRENCY` reads at a time, each
wheel at most once per process, and by range requests only (`MetadataRepository`
never lets a read-ahead download a whole wheel from an upstream that refuses
ranges). Metadata is kept for good, so nothing read ahead is thrown away. A
failure is only logged at debug level: the client's own request, if it comes,
reports it.

With `visit`, the read-ahead also walks the dependencies: each project that
a METADATA read ahead requires (`required_projects`: not those of extras) has
its page opened through the whole chain, which reads that page's newest
release ahead in turn. A resolver asks for those pages next, one dependency
level after another; the walk asks for them as soon as their dependent's
metadata is known, so the client finds them fetched, and on an upstream far
away saves a round trip per level. Through the whole chain: an in-house name
is answered by the in-house store and never asked of an upstream. Each
project is visited at most once per process, `CONCURRENCY` at a time, and the
walk stops wherever no metadata is read: at in-house projects and at wheels
whose metadata is already known.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import suppress
from typing import TypeVar

from packaging.version import Version

from packyard.dists.filenames import parse_filename
from packyard.dists.metadata import required_projects
from packyard.errors import InvalidDistribution, PackyardError
from packyard.model import DistFile

logger = logging.getLogger(__name__)

MAX_WHEELS = 3
CONCURRENCY = 4
T = TypeVar("T")

Extract = Callable[[str, DistFile], Awaitable[bytes]]
"""`extract(project, wheel)`: read and keep the METADATA of one wheel; its bytes."""
Visit = Callable[[str], Awaitable[object]]
"""`visit(project)`: open a project's page through the chain (so it is fetched and kept)."""


def newest_release(wheels: Iterable[DistFile], max_wheels: int = MAX_WHEELS) -> list[DistFile]:
    """The wheels of the newest final, unyanked release; none if it has more than `max_wheels`."""
    by_version: dict[Version, list[DistFile]] = {}
    for dist in wheels:
        if dist.yanked:
            continue
        try:
            version = parse_filename(dist.filename).version
        except InvalidDistribution:
            continue
        if not version.is_prerelease:
            by_version.setdefault(version, []).append(dist)
    if not by_version:
        return []
    newest = by_version[max(by_version)]
    return newest if len(newest) <= max_wheels else []


class ReadAhead:
    """Starts background extractions; owns their tasks (`aclose` cancels them)."""

    def __init__(
        self,
        extract: Extract,
        *,
        visit: Visit | None = None,
        max_wheels: int = MAX_WHEELS,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._extract = extract
        self._visit = visit
        self._max_wheels = max_wheels
        self._slots = asyncio.Semaphore(concurrency)
        # Pages have slots of their own: a page waiting for a wheel's slot
        # while that wheel waits for a page's would stall both walks.
        self._page_slots = asyncio.Semaphore(concurrency)
        self._started: set[str] = set()
        self._visited: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, project: str, wheels: Iterable[DistFile]) -> None:
        """Read ahead the newest release among `wheels` (those still without metadata)."""
        for dist in newest_release(wheels, self._max_wheels):
            if dist.filename in self._started:
                continue
            self._started.add(dist.filename)
            self._start(self._read(project, dist))

    def _follow(self, metadata: bytes) -> None:
        """Visit the projects that `metadata` requires, each once."""
        if self._visit is None:
            return
        for project in required_projects(metadata):
            if project not in self._visited:
                self._visited.add(project)
                self._start(self._open(self._visit, project))

    def _start(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for every read started so far (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        with suppress(asyncio.CancelledError):
            await self.settle()

    async def _read(self, project: str, dist: DistFile) -> None:
        async with self._slots:
            metadata = await _quietly(
                self._extract(project, dist), f"the metadata of {dist.filename}"
            )
        if metadata is not None:
            self._follow(metadata)

    async def _open(self, visit: Visit, project: str) -> None:
        async with self._page_slots:
            await _quietly(visit(project), f"the page of {project}")


async def _quietly(work: Awaitable[T], what: str) -> T | None:
    """`work`'s result, or None if it failed: a read ahead fails no request.

    An expected failure (not found, hidden, upstream down or unreadable) is
    logged at debug level, the client's own request reports it if it comes;
    a fault of ours is logged with its traceback.
    """
    try:
        return await work
    except (PackyardError, OSError) as exc:
        logger.debug("reading ahead %s failed: %s", what, exc)
    except Exception:
        logger.exception("reading ahead %s failed", what)
    return None
