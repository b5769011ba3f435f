"""The store's serial: how readers learn, cheaply, that the data they cached changed.

Every write that changes what the index serves calls `bump_serial(session)`
in its own transaction, so the new serial becomes visible exactly when the
write does, to every process that shares the database (DESIGN §3: cache
invalidation lives in the database, not in process memory).

Two signals go with the new serial, so that nobody has to poll for it:

- On PostgreSQL, `pg_notify(CHANNEL, serial)` in the same transaction: the
  server delivers it on commit, and never for a rolled-back one, to every
  process listening (`db.freshness.ListeningSerialWatcher`).
- In this process, the serial is noted in `session.info`; `follow_commits`
  hands it to the process's watcher right after the commit, before the writer
  answers its client, so the next request sees the write (read-your-writes)
  without waiting for any notification.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import Change

SERIAL_ROW = 1
"""The id of the one row of `changes` (inserted by the first migration)."""

CHANNEL = "packyard_serial"
"""The PostgreSQL notification channel; the payload is the new serial."""

_COMMITTED_SERIAL = "packyard.serial"  # the session.info key bump_serial writes


def bump_serial(session: Session) -> int:
    """Advance the serial inside `session`'s transaction and return the new value.

    Call it in the same transaction as the write, before committing. The row
    lock it takes also serialises concurrent writers, which is what keeps the
    serial strictly increasing across processes.

    Raises:
        LookupError: the `changes` row is missing (the database was not migrated).
    """
    new = session.execute(
        update(Change)
        .where(Change.id == SERIAL_ROW)
        .values(serial=Change.serial + 1, changed_at=datetime.now(UTC))
        .returning(Change.serial)
    ).scalar_one_or_none()
    if new is None:
        raise LookupError("the changes table has no serial row: run the migrations")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, str(new))))
    session.info[_COMMITTED_SERIAL] = new
    return new


def follow_commits(sessions: sessionmaker[Session], saw: Callable[[int], None]) -> None:
    """Call `saw(serial)` after each commit of a session from `sessions` that
    bumped the serial, in the committing thread, before `commit()` returns.

    This is what makes a process read its own writes at once: `saw` is the
    process's `SerialWatcher.saw`.
    """

    @event.listens_for(sessions, "after_commit")
    def committed(session: Session) -> None:
        serial = session.info.pop(_COMMITTED_SERIAL, None)
        if serial is not None:
            saw(serial)

    @event.listens_for(sessions, "after_rollback")
    def rolled_back(session: Session) -> None:
        session.info.pop(_COMMITTED_SERIAL, None)


def read_serial(session: Session) -> int:
    """The current serial as `session` sees it.

    Raises:
        LookupError: the `changes` row is missing (the database was not migrated).
    """
    serial = session.scalar(select(Change.serial).where(Change.id == SERIAL_ROW))
    if serial is None:
        raise LookupError("the changes table has no serial row: run the migrations")
    return serial
