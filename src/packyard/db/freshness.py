"""Watching the serial: is what a reader cached still current? (hot path).

Readers keep built pages in memory and ask a `SerialWatcher` on every request
whether the store changed since. The question must cost next to nothing, yet
a write by any process (an upload, `packyard import` while `packyard serve`
runs) has to be seen at once. Two implementations:

- SQLite: a dedicated read-only-by-use sqlite3 connection and
  `PRAGMA data_version`, which changes whenever another connection, in this
  or another process, commits. The check is a few microseconds and runs on the
  caller's thread; the serial row is re-read only when the value moved.
- Any other database (PostgreSQL): no such cheap signal exists, so the serial
  is re-read at most every `poll_interval` seconds (0.5 by default), in a
  worker thread. Changes become visible within that interval.

`PerSerial` is what the readers build on: a value loaded once per serial.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Generic, Protocol, TypeVar

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.serial import SERIAL_ROW, read_serial
from packyard.flights import Flights

DEFAULT_POLL_INTERVAL = 0.5
T = TypeVar("T")


class SerialWatcher(Protocol):
    """Tells readers the store's current serial (see `db.serial`)."""

    async def current(self) -> int:
        """The serial as of now (or, when polling, as of at most the poll interval ago).

        Raises:
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
            LookupError: the database was not migrated.
        """
        ...

    def close(self) -> None:
        """Release the watcher's connection; `current` must not be called afterwards."""
        ...


class SqliteSerialWatcher:
    """`PRAGMA data_version` on a connection of its own: microseconds per check."""

    def __init__(self, database: str) -> None:
        # Autocommit (isolation_level=None): an open read transaction would pin
        # an old snapshot and hide every later commit.
        self._connection = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA query_only = ON")
        # Short: the check runs on the event loop, and in WAL mode a reader is
        # only ever blocked briefly (recovery after a crash).
        self._connection.execute("PRAGMA busy_timeout = 1000")
        self._lock = threading.Lock()
        self._data_version: int | None = None
        self._serial = 0
        # True from a check until the event loop's next iteration (see `current`).
        self._checked_this_turn = False

    async def current(self) -> int:
        # Requests handled in one turn of the event loop are concurrent, so one
        # check serves them all: under load, many requests share a turn, and the
        # check is skipped for all but the first. A commit that lands during the
        # turn is seen by the first request of the next one.
        if self._checked_this_turn:
            return self._serial
        with self._lock:
            (version,) = self._connection.execute("PRAGMA data_version").fetchone()
            if version != self._data_version:
                # Read the version first, then the serial: a commit landing in
                # between changes the version again, so it is never missed.
                self._serial = self._read_serial()
                self._data_version = version
        self._checked_this_turn = True
        asyncio.get_running_loop().call_soon(self._next_turn)
        return self._serial

    def _next_turn(self) -> None:
        self._checked_this_turn = False

    def _read_serial(self) -> int:
        row = self._connection.execute(
            "SELECT serial FROM changes WHERE id = ?", (SERIAL_ROW,)
        ).fetchone()
        if row is None:
            raise LookupError("the changes table has no serial row: run the migrations")
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PollingSerialWatcher:
    """Re-reads the serial at most every `interval` seconds (for PostgreSQL)."""

    def __init__(self, engine: Engine, interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self._sessions = sessionmaker(engine)
        self._interval = interval
        self._serial: int | None = None
        self._checked_at = 0.0
        self._refreshing = False

    async def current(self) -> int:
        due = time.monotonic() - self._checked_at >= self._interval
        # One refresh at a time: while it runs, other requests use the last value.
        if self._serial is None or (due and not self._refreshing):
            self._refreshing = True
            try:
                self._serial = await anyio.to_thread.run_sync(self._read)
                self._checked_at = time.monotonic()
            finally:
                self._refreshing = False
        return self._serial

    def _read(self) -> int:
        with self._sessions() as session:
            return read_serial(session)

    def close(self) -> None:
        return


def open_serial_watcher(
    engine: Engine, poll_interval: float = DEFAULT_POLL_INTERVAL
) -> SerialWatcher:
    """The cheapest correct watcher for `engine`'s database.

    A SQLite database in a file gets `SqliteSerialWatcher`; in-memory SQLite
    and every other database get `PollingSerialWatcher(engine, poll_interval)`.
    The caller owns the watcher and closes it.

    Raises:
        sqlite3.Error: the SQLite database file cannot be opened.
    """
    url = engine.url
    database = url.database or ""
    in_file = database not in ("", ":memory:") and not url.query.get("uri")
    if engine.dialect.name == "sqlite" and in_file:
        return SqliteSerialWatcher(database)
    return PollingSerialWatcher(engine, poll_interval)


def watcher_for(
    session_factory: sessionmaker[Session], watcher: SerialWatcher | None
) -> tuple[SerialWatcher, bool]:
    """`watcher`, or a new one on the factory's engine; and whether the caller owns it.

    A component that follows the serial takes an optional shared watcher; without
    one it opens (and must close) its own.

    Raises:
        TypeError: no watcher is given and the factory is not bound to an Engine.
    """
    if watcher is not None:
        return watcher, False
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, Engine):
        raise TypeError("the session factory must be bound to an Engine")
    return open_serial_watcher(engine), True


class PerSerial(Generic[T]):
    """A value read from the store once per serial, kept while the serial stays.

    `current` gives the value as of the watcher's serial, loaded by `load()`
    in a worker thread when the serial moved: once, however
    many requests arrive before the load lands. Loads that finish out of
    order never replace a newer value with an older one. `reuse(old, new)`
    may hand back `old`, or parts of it, where nothing changed, so that what
    callers built from it keeps its identity (DESIGN §2).
    """

    def __init__(
        self,
        watcher: SerialWatcher,
        load: Callable[[], T],
        reuse: Callable[[T, T], T] | None = None,
    ) -> None:
        self._watcher = watcher
        self._load = load
        self._reuse = reuse
        self._kept: tuple[int, T] | None = None
        self._loads: Flights[int, T] = Flights()

    async def current(self) -> T:
        """The value as of the watcher's serial.

        Raises:
            whatever the watcher or `load` raises (a database that cannot be read).
        """
        # The serial is read before the data: data newer than its tag only
        # costs one needless reload later, never a stale value.
        serial = await self._watcher.current()
        kept = self._kept
        if kept is not None and kept[0] == serial:
            return kept[1]
        fresh = await self._loads.run(serial, partial(anyio.to_thread.run_sync, self._load))
        kept = self._kept
        if kept is not None and kept[0] >= serial:
            return kept[1]  # another caller stored this load, or a newer one
        if kept is not None and self._reuse is not None:
            fresh = self._reuse(kept[1], fresh)
        self._kept = (serial, fresh)
        return fresh
