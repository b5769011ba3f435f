"""Which process does a scheduled job this period (the advisories' import, the
directory refresh): the first whose transaction claims it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from packyard.db.serial import bump_serial


def claim(session: Session, lock: int) -> bool:
    """Whether this transaction may do the job `lock` names.

    PostgreSQL: a transaction-scoped advisory lock, refused at once to a second
    replica. Others (SQLite): the write lock, which the serial's bump takes and
    a second writer waits for, up to the busy timeout (then another worker is
    still at it: not ours either). The claim ends with the transaction, so a
    process that dies mid-job leaves nothing behind.
    """
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(select(func.pg_try_advisory_xact_lock(lock))))
    try:
        bump_serial(session)
    except SQLAlchemyError as exc:
        # The driver's words, under SQLAlchemy's error or the domain's DatabaseUnavailable.
        if "database is locked" not in str(getattr(exc, "orig", None) or exc.__cause__):
            raise
        return False
    return True
