"""Structured events: one JSON object per line, to stdout or a rotated file (DESIGN §5).

Events: `download` (a file sent), `page-miss` (a project page not found),
`upstream-error` (an upstream failed), and the audit trail's lines, which
`publish/audit.py` logs on the `packyard.audit` logger and which this sink
receives while it is open, and the events of distrusted upstreams
(`upstream-file-dropped`, `upstream-connection-refused`,
`upstream-file-mismatch`, `upstream-metadata-mismatch`:
`repository/upstream_events.py`), logged on the `packyard.upstream` logger
by the read path, the server's own faults (`storage-full`,
`database-unavailable`: `faults.py`, at most one line per kind per interval),
and the advisories' scheduled refresh (`advisories-refresh`,
`advisories-refresh-failed`: `advisories/events.py`). Every line has `event`
and `at` (UTC, ISO 8601 with `Z`); keys are sorted so lines diff and grep well.

Writing never blocks the event loop: lines go through a bounded queue to a
thread that writes them (a full stdout pipe or a slow disk would otherwise
stall every request). When the queue is full, lines are dropped and counted
in `dropped`, rather than delaying requests. Lines emitted on the event loop
are handed over in batches, at most every `BATCH_SECONDS`: waking the writer
thread for every line cost more than serving a cached file (bench/RESULTS.md).

The file is rotated by size (`max_bytes`, keeping `backups` old files). Size
rotation is not safe across processes, so with several workers each writes
its own file, `<stem>-<pid><suffix>` next to the configured path; shippers
such as Filebeat follow `<stem>*<suffix>*`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import os
import queue
import sys
from datetime import UTC, datetime
from pathlib import Path

from packyard.advisories.events import ADVISORIES_LOGGER
from packyard.faults import FAULTS_LOGGER
from packyard.publish.audit import AUDIT_LOGGER
from packyard.repository.upstream_events import UPSTREAM_LOGGER

QUEUE_LINES = 10_000
BATCH_SECONDS = 0.2
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that drops (and counts) records when the queue is full."""

    def __init__(self, lines: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(lines)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class EventLog:
    """The event sink of one application; `close()` flushes and releases it.

    Args:
        path: the events file; None writes to standard output.
        max_bytes, backups: size rotation of the file.
        per_process: write `<stem>-<pid><suffix>` instead of `path` (several workers).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        per_process: bool = False,
    ) -> None:
        self.path = _process_path(path) if path is not None and per_process else path
        writer = _writer(self.path, max_bytes, backups)
        writer.setFormatter(logging.Formatter("%(message)s"))
        lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LINES)
        self._queue = _DroppingQueueHandler(lines)
        self._writer = writer
        self._listener = logging.handlers.QueueListener(lines, writer)
        self._listener.start()
        # The audit trail goes to the same sink; INFO is the level it logs at.
        if AUDIT_LOGGER.level == logging.NOTSET or AUDIT_LOGGER.level > logging.INFO:
            AUDIT_LOGGER.setLevel(logging.INFO)
        AUDIT_LOGGER.addHandler(self._queue)
        # The upstream events too; here rather than in the ordinary log as well.
        UPSTREAM_LOGGER.addHandler(self._queue)
        UPSTREAM_LOGGER.propagate = False
        # The server's own faults (a full store, the database down), once per interval.
        FAULTS_LOGGER.addHandler(self._queue)
        FAULTS_LOGGER.propagate = False
        # The advisories' refresh too (its successes are INFO).
        if ADVISORIES_LOGGER.level == logging.NOTSET or ADVISORIES_LOGGER.level > logging.INFO:
            ADVISORIES_LOGGER.setLevel(logging.INFO)
        ADVISORIES_LOGGER.addHandler(self._queue)
        ADVISORIES_LOGGER.propagate = False
        self._closed = False
        self._batch: list[str] = []  # lines emitted on the event loop, not yet handed over

    @property
    def dropped(self) -> int:
        """Lines dropped because the writer could not keep up."""
        return self._queue.dropped

    def emit(self, event: str, **fields: object) -> None:
        """Write one event line: `{"event": event, "at": now, **fields}`.

        On an event loop the line joins the current batch, handed to the
        writer within `BATCH_SECONDS`; elsewhere it is handed over at once.
        """
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = json.dumps({"event": event, "at": at, **fields}, default=str, sort_keys=True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand_over([line])
            return
        if not self._batch:
            loop.call_later(BATCH_SECONDS, self.flush)
        self._batch.append(line)

    def flush(self) -> None:
        """Hand the current batch to the writer thread now."""
        batch, self._batch = self._batch, []
        if batch:
            self._hand_over(batch)

    def _hand_over(self, lines: list[str]) -> None:
        # One record for the batch: its message is the lines, one per line.
        message = "\n".join(lines)
        record = logging.LogRecord("packyard.events", logging.INFO, "", 0, message, None, None)
        before = self._queue.dropped
        self._queue.handle(record)
        if self._queue.dropped != before:
            self._queue.dropped += len(lines) - 1  # a dropped batch drops every line

    def close(self) -> None:
        """Stop taking audit lines, write what is queued, and close the file."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        AUDIT_LOGGER.removeHandler(self._queue)
        UPSTREAM_LOGGER.removeHandler(self._queue)
        FAULTS_LOGGER.removeHandler(self._queue)
        FAULTS_LOGGER.propagate = True
        ADVISORIES_LOGGER.removeHandler(self._queue)
        UPSTREAM_LOGGER.propagate = True
        ADVISORIES_LOGGER.propagate = True
        self._listener.stop()
        self._writer.close()


def _writer(path: Path | None, max_bytes: int, backups: int) -> logging.Handler:
    if path is None:
        return logging.StreamHandler(sys.stdout)
    path.parent.mkdir(parents=True, exist_ok=True)
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )


def _process_path(path: Path) -> Path:
    """`events.jsonl` -> `events-<pid>.jsonl`: one file per worker process."""
    return path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
