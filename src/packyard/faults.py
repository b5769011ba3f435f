"""Faults of the server's own parts, reported once per kind per interval, with a count.

A full disk or a database that does not answer fails every request that
needs it: thousands a second under load. Logging each (with its traceback)
once wrote 16 MB in 10 s of a PostgreSQL outage. `report` writes one line
the first time a fault of a kind is seen, then at most one line per
`INTERVAL` seconds, counting the occurrences in between; a count not yet
written goes out with the next line of that kind.

Lines are JSON on the `packyard.faults` logger, as the upstream events are
(`repository/upstream_events.py`): the event log (`telemetry/events.py`)
writes them among its events, and without one they reach the ordinary log
as warnings. Kinds:

- `storage-full`: a blob store (or a spool directory) has no space left;
  `store` names it, `reason` says what could not be written;
- `database-unavailable`: the database could not be reached or failed;
  `reason` is the driver's first line.

Every line has `event`, `at` (UTC), `count` (occurrences since the previous
line of this kind and key, this one included), `seconds` (the time they span)
and `reason`.

The throttle is process-wide, like the logging module it writes to: every
part of the process that meets a fault reports it here, and one table keeps
the counts (guarded by a lock: faults are met in worker threads too).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

FAULTS_LOGGER = logging.getLogger("packyard.faults")
INTERVAL = 10.0
"""Seconds between two lines of one kind of fault."""


@dataclass(slots=True)
class _Tally:
    written_at: float  # when the last line of this kind was written
    since: float  # when the first occurrence not yet written happened
    count: int = 0  # occurrences not yet written


class FaultLog:
    """Writes a line per kind of fault at most every `interval` seconds."""

    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._lock = threading.Lock()

    def report(self, event: str, key: str, reason: str, **fields: object) -> bool:
        """Count one fault of kind `event` (and `key`, e.g. the store); write a
        line if this is the first, or the first in `interval` seconds.

        Returns whether a line was written.
        """
        now = self._clock()
        with self._lock:
            tally = self._tallies.get((event, key))
            if tally is None:
                tally = self._tallies[(event, key)] = _Tally(now - self.interval, now)
            if tally.count == 0:
                tally.since = now
            tally.count += 1
            if now - tally.written_at < self.interval:
                return False
            count, since = tally.count, tally.since
            tally.count, tally.written_at = 0, now
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = {
            "event": event,
            "at": at,
            "count": count,
            "seconds": round(now - since, 3),
            "reason": reason,
            **fields,
        }
        FAULTS_LOGGER.warning(json.dumps(line, default=str, sort_keys=True))
        return True


LOG = FaultLog()
"""The process's fault log (see the module docstring for why it is one)."""


def report(event: str, key: str, reason: str, **fields: object) -> bool:
    """`LOG.report`: count one fault, and write it if its interval allows."""
    return LOG.report(event, key, reason, **fields)
