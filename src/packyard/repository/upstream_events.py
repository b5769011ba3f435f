"""Events of an upstream that was not believed: what it sent, and what was refused.

The read path logs these on the `packyard.upstream` logger as JSON lines; the
event log (`telemetry/events.py`) writes them to its sink, as it does the
audit trail, and without one they reach the ordinary log as warnings. Kinds:

- `upstream-file-dropped`: page entries were dropped, files on a host that is
  not the upstream's, or files of another project (`count`, `project`);
- `upstream-connection-refused`: a request or redirect to another host, or to
  a private address;
- `upstream-file-mismatch`: a file's bytes do not match the sha256 (or size)
  its page gave (`filename`);
- `upstream-metadata-mismatch`: a wheel's METADATA differs from the copy read
  earlier by ranges (`filename`).

Every line has `event`, `at` (UTC), `upstream` (its label) and `reason`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

UPSTREAM_LOGGER = logging.getLogger("packyard.upstream")


def emit(event: str, upstream: str, **fields: object) -> None:
    """Log one event line (safe from any thread: the logging module locks)."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {"event": event, "at": at, "upstream": upstream, **fields}
    UPSTREAM_LOGGER.warning(json.dumps(line, default=str, sort_keys=True))
