"""The curation rules admins set at runtime, read for one upstream (hot path).

`publish/policies.py` writes `upstream_rules` and `upstream_cooldowns` rows,
`publish/cooldown_exemptions.py` `cooldown_exemptions` rows, each together
with a serial bump (`db.serial`); `PolicyRepository` asks a
`StoredRulesReader` on every request what the database adds to its
upstream's configuration. As for yanks (`repository/yank.py`), the rows are
read once per change of the serial, as the `SerialWatcher` tells, never per
request: a check costs microseconds on SQLite and a memory read on
PostgreSQL. The process that made a change applies it on its next request;
every other replica sharing the database as soon as PostgreSQL's notification
reaches it (`db.freshness`).

A reload that finds the same rules returns the very same `StoredRules`
object, so a write elsewhere (an upload, a yank, another upstream's rules)
costs `PolicyRepository` nothing and keeps its pages (the identity rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.freshness import PerSerial, SerialWatcher, watcher_for
from packyard.db.policies import CooldownExemption, UpstreamCooldown, UpstreamRule


@dataclass(frozen=True, slots=True)
class StoredRules:
    """What the database adds to one upstream's configured curation.

    `allow` and `deny` are normalised globs, oldest first; `cooldown_days`
    None means "as configured"; `exempt` holds the normalised names of the
    projects the cool-down does not hold back.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    cooldown_days: float | None = None
    exempt: frozenset[str] = frozenset()


NO_RULES = StoredRules()


def load_rules(session: Session, upstream: str) -> StoredRules:
    """The stored rules of the upstream labelled `upstream` (`NO_RULES`-equal if none).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    rows = session.execute(
        select(UpstreamRule.kind, UpstreamRule.glob)
        .where(UpstreamRule.upstream == upstream)
        .order_by(UpstreamRule.id)
    ).all()
    days = session.scalar(
        select(UpstreamCooldown.days).where(UpstreamCooldown.upstream == upstream)
    )
    exempt = session.scalars(
        select(CooldownExemption.project).where(CooldownExemption.upstream == upstream)
    )
    return StoredRules(
        allow=tuple(glob for kind, glob in rows if kind == "allow"),
        deny=tuple(glob for kind, glob in rows if kind == "deny"),
        cooldown_days=days,
        exempt=frozenset(exempt),
    )


class StoredRulesReader:
    """The current `StoredRules` of one upstream, reloaded when the serial moves."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        upstream: str,
        *,
        watcher: SerialWatcher | None = None,
    ) -> None:
        """`upstream` is the label (`UpstreamSettings.label`) the rows are stored under.

        `watcher` defaults to `open_serial_watcher` on the sessions' engine,
        which this reader then owns and closes in `close`.

        Raises:
            TypeError: no watcher is given and the factory is not bound to an Engine.
            sqlite3.Error: the SQLite database file cannot be opened.
        """
        self.upstream = upstream
        self._sessions = session_factory
        self._watcher, self._owns_watcher = watcher_for(session_factory, watcher)
        self._rules = PerSerial(self._watcher, self._load, _same_rules)

    async def current(self) -> StoredRules:
        """The rules as of the watcher's serial; the same object while they are equal.

        Raises:
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
            LookupError: the database was not migrated.
        """
        return await self._rules.current()

    def close(self) -> None:
        """Release the watcher if this reader opened it."""
        if self._owns_watcher:
            self._watcher.close()

    def _load(self) -> StoredRules:
        with self._sessions() as session:
            # No rules at all is `NO_RULES` itself, the value before the first load.
            return _same_rules(NO_RULES, load_rules(session, self.upstream))


def _same_rules(kept: StoredRules, fresh: StoredRules) -> StoredRules:
    """The kept rules while they are equal: the policy then keeps its pages."""
    return kept if kept == fresh else fresh
