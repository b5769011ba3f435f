"""Records by id, as stored: what `GET /osv/v1/vulns/{id}` serves.

The in-memory index (`advisories/index.py`) holds the records in force; a
withdrawn record is left out of it, yet osv.dev still serves it by id (with its
`withdrawn` time, so a tool that once reported it learns why it no longer
does). Records are therefore read by id from the database, as the JSON text
the import stored: served byte for byte, never parsed again.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.db.advisories import Advisory


def stored_record(session: Session, advisory_id: str) -> str | None:
    """The record of `advisory_id` (exact, case-sensitive as osv.dev's ids),
    as JSON text, withdrawn or not; None if there is none.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    return session.scalar(select(Advisory.record).where(Advisory.id == advisory_id))


def aliased_by(session: Session, alias: str) -> list[str]:
    """The ids of the records that list `alias` (a CVE, a GHSA id...) among
    their aliases, sorted.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    # `aliases` is a JSON list of strings: a LIKE narrows the rows (a `%` or `_`
    # in `alias` only widens it), the parsed list decides.
    rows = session.execute(
        select(Advisory.id, Advisory.aliases).where(Advisory.aliases.like(f'%"{alias}"%'))
    )
    return sorted(advisory_id for advisory_id, aliases in rows if alias in json.loads(aliases))
