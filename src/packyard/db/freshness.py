"""Watching the serial: is what a reader cached still current? (hot path).

Readers keep built pages in memory and ask a `SerialWatcher` on every request
whether the store changed since. The question must cost next to nothing, yet
a write by any process (an upload, `packyard import` while `packyard serve`
runs) has to be seen at once. Two implementations:

- SQLite: a dedicated read-only-by-use sqlite3 connection and
  `PRAGMA data_version`, which changes whenever another connection, in this
  or another process, commits. The check is a few microseconds and runs on the
  caller's thread; the serial row is re-read only when the value moved.
- PostgreSQL: `LISTEN` on a connection of its own, in a thread; every write
  sends `NOTIFY` in its transaction (`db.serial.bump_serial`), which the server
  delivers on commit. A check is a memory read. Notifications sent while the
  connection was down are not replayed, so the serial is re-read on every
  (re)connect, and polled while there is no connection.
- Any other database (in-memory SQLite): the serial is re-read at most every
  `poll_interval` seconds (0.5 by default), in a worker thread.

While the database does not answer (`DatabaseUnavailable`), a watcher that
read the serial before keeps answering with it, and tries again every poll
interval: no write can commit meanwhile, so what readers built for that
serial is still what the store holds, and pages, rules and yanks kept in
memory go on being served through a restart or a failover. (A replica cut off
from a database that others still reach serves what it had until it
reconnects.) A reader whose serial moved just before the outage serves what
it loaded last (`PerSerial`). Only a reader that must load something it never
loaded fails.

Whatever the watcher, a write of this very process is seen on the next
request: `db.serial.follow_commits` tells the watcher (`saw`) right after the
commit, before the writer answers (read-your-writes, DESIGN §3).

`PerSerial` is what the readers build on: a value loaded once per serial.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.serial import CHANNEL, SERIAL_ROW, read_serial
from packyard.errors import DatabaseUnavailable
from packyard.flights import Flights

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.5
# A listening connection that has heard nothing for this long re-reads the
# serial: a cheap proof that the connection is still alive.
HEARTBEAT_SECONDS = 5.0
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0)
LISTENER_NAME = "packyard-serial-listener"
"""The listener's `application_name`, as `pg_stat_activity` shows it."""
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

    def saw(self, serial: int) -> None:
        """A write of this process committed `serial`: `current` is at least that
        from now on. Safe from any thread."""
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

    def saw(self, serial: int) -> None:
        # `data_version` moves for this process's own commits too (they come
        # from other connections than the watcher's): nothing to do but forget
        # this turn's check, for a request that shares the writer's turn.
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
    """Re-reads the serial at most every `interval` seconds (a database without
    a change signal); a write of this process is seen at once (`saw`)."""

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
                self.saw(await anyio.to_thread.run_sync(self._read))
            except DatabaseUnavailable:
                if self._serial is None:
                    raise
                # The last serial holds (module docstring); asked again after the interval.
            finally:
                self._checked_at = time.monotonic()
                self._refreshing = False
        assert self._serial is not None
        return self._serial

    def saw(self, serial: int) -> None:
        # Newest wins: a poll that started before a commit may land after it.
        if self._serial is None or serial > self._serial:
            self._serial = serial

    def _read(self) -> int:
        with self._sessions() as session:
            return read_serial(session)

    def close(self) -> None:
        return


class ListeningSerialWatcher:
    """PostgreSQL: `LISTEN` for the writers' `NOTIFY` (a memory read per check).

    A daemon thread holds a psycopg connection of its own (autocommit, outside
    SQLAlchemy's pool, which must not lose a connection for good), listens,
    then reads the serial: in that order, so that a commit between the two is
    either read or heard. It re-reads the serial after `HEARTBEAT_SECONDS` of
    silence, and on every reconnect, since PostgreSQL does not replay what was
    sent while a listener was away. While it has no connection, `current`
    polls as `PollingSerialWatcher` does, so a replica cut off from
    notifications still follows within the poll interval.
    """

    def __init__(self, engine: Engine, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._fallback = PollingSerialWatcher(engine, poll_interval)
        self._lock = threading.Lock()
        self._serial: int | None = None
        self._listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._listen_forever, name=LISTENER_NAME, daemon=True
        )
        self._thread.start()

    @property
    def listening(self) -> bool:
        """Whether notifications are being heard (else `current` polls)."""
        return self._listening

    async def current(self) -> int:
        serial = self._serial
        if self._listening and serial is not None:
            return serial
        if serial is not None:
            self._fallback.saw(serial)  # what it answers while the database is down
        polled = await self._fallback.current()
        self.saw(polled)
        return max(polled, self._serial or polled)

    def saw(self, serial: int) -> None:
        with self._lock:
            if self._serial is None or serial > self._serial:
                self._serial = serial

    def close(self) -> None:
        # Not joined: the thread wakes within a heartbeat, sees the flag and
        # ends; as a daemon it never holds up the process's exit.
        self._stop.set()

    def _listen_forever(self) -> None:
        import psycopg  # the PostgreSQL driver: only needed where PostgreSQL is

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=LISTENER_NAME,
                ) as conn:
                    self._listen(conn)
            except Exception as exc:  # psycopg.Error, or a schema not migrated yet
                self._listening = False
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                if failures == 0:
                    logger.warning("serial listener lost its connection (%s); reconnecting", exc)
                failures += 1
                self._stop.wait(delay)
            else:
                failures = 0
        self._listening = False

    def _listen(self, conn: Any) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self.saw(_read_serial_row(conn))
        self._listening = True
        while not self._stop.is_set():
            heard = False
            for notify in conn.notifies(timeout=HEARTBEAT_SECONDS):
                heard = True
                self._heard(notify.payload)
                if self._stop.is_set():
                    return
            if not heard:
                self.saw(_read_serial_row(conn))

    def _heard(self, payload: str) -> None:
        try:
            self.saw(int(payload))
        except ValueError:
            logger.warning("ignoring a %s notification that is not a serial: %r", CHANNEL, payload)


def _read_serial_row(conn: Any) -> int:
    row = conn.execute("SELECT serial FROM changes WHERE id = %s", (SERIAL_ROW,)).fetchone()
    if row is None:
        raise LookupError("the changes table has no serial row: run the migrations")
    return int(row[0])


def open_serial_watcher(
    engine: Engine, poll_interval: float = DEFAULT_POLL_INTERVAL
) -> SerialWatcher:
    """The cheapest correct watcher for `engine`'s database.

    A SQLite database in a file gets `SqliteSerialWatcher`, PostgreSQL gets
    `ListeningSerialWatcher`; in-memory SQLite and every other database get
    `PollingSerialWatcher(engine, poll_interval)`. The caller owns the watcher
    and closes it.

    Raises:
        sqlite3.Error: the SQLite database file cannot be opened.
    """
    url = engine.url
    database = url.database or ""
    in_file = database not in ("", ":memory:") and not url.query.get("uri")
    if engine.dialect.name == "sqlite" and in_file:
        return SqliteSerialWatcher(database)
    if engine.dialect.name == "postgresql":
        return ListeningSerialWatcher(engine, poll_interval)
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

        While the database does not answer, the value last loaded is served
        (if there is one) even when the serial moved past it.

        Raises:
            whatever the watcher or `load` raises (a database that cannot be read,
            with no value loaded before).
        """
        # The serial is read before the data: data newer than its tag only
        # costs one needless reload later, never a stale value.
        serial = await self._watcher.current()
        kept = self._kept
        if kept is not None and kept[0] == serial:
            return kept[1]
        try:
            fresh = await self._loads.run(serial, partial(anyio.to_thread.run_sync, self._load))
        except DatabaseUnavailable:
            if kept is None:
                raise
            # The database went away between the last write and this load: what was
            # loaded last is served, as a replica that has not yet heard of the write.
            return kept[1]
        kept = self._kept
        if kept is not None and kept[0] >= serial:
            return kept[1]  # another caller stored this load, or a newer one
        if kept is not None and self._reuse is not None:
            fresh = self._reuse(kept[1], fresh)
        self._kept = (serial, fresh)
        return fresh
