"""Events of the advisories' scheduled refresh, as JSON lines.

They go to the `packyard.advisories` logger; the event log
(`telemetry/events.py`) writes them to its sink, as it does the audit trail,
and without one they reach the ordinary log. Kinds:

- `advisories-refresh`: an import of `[advisories] source` on schedule
  (`source`, and the counts `added`, `changed`, `withdrawn`, `unchanged`,
  `skipped`);
- `advisories-refresh-failed`: it could not be done this period (`source`,
  `reason`); the next period tries again.

Every line has `event` and `at` (UTC).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

ADVISORIES_LOGGER = logging.getLogger("packyard.advisories")


def emit(event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one event line (safe from any thread: the logging module locks)."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {"event": event, "at": at, **fields}
    ADVISORIES_LOGGER.log(level, json.dumps(line, default=str, sort_keys=True))
