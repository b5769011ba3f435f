"""How often each project is downloaded here: the search's tie-breaker.

Ranking puts, among results that are otherwise equal, the projects people on
this server download most first (`search.index`). The counts come from a
`Popularity` source through `InHouseSync`, which copies them into the index's
`downloads` column every `POPULARITY_INTERVAL` seconds, so a search never
waits for them and results page consistently. There is no source by default
(every project counts 0, and equals are ordered by name); the per-day usage
roll-up (issue 15, "Usage, at a glance") provides one: its downloads over
the last `WINDOW_DAYS` days.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

POPULARITY_INTERVAL = 300.0
"""Seconds between two reads of the popularity source."""
WINDOW_DAYS = 30
"""How far back a source is expected to count downloads."""


class Popularity(Protocol):
    """A source of download counts by project."""

    def downloads(self) -> Mapping[str, int]:
        """Downloads per normalised project name (a name not given counts 0).

        Synchronous: called from a worker thread.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the counts cannot be read (the
                index keeps the previous ones).
        """
        ...


class FixedPopularity:
    """Counts given up front: for tests, benchmarks and imports of known figures."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self._counts = dict(counts)

    def downloads(self) -> Mapping[str, int]:
        return self._counts
