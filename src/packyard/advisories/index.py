"""The advisories as every request reads them: in memory, reloaded per import.

    index = AdvisoryIndexReader(sessions, watcher)
    state = await index.current()          # an `Advisories`, as of the store's serial
    state.affecting("django", "3.2.1")     # the records that apply to that release
    state.policy_for("pypi", configured)   # after admins' runtime changes

A change of the store's serial (any write) costs one small query: the newest
import's id, the accepted risks and the runtime policies. The records
themselves are read and parsed again only when an import moved that id, so
an upload does not re-read thousands of records.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.records import OsvRecord, RecordRejected, read_record
from packyard.db.advisories import (
    EVERY_PROJECT,
    Advisory,
    AdvisoryException,
    AdvisoryImport,
    AdvisoryPolicy,
)
from packyard.db.freshness import PerSerial, SerialWatcher, watcher_for

MAX_REMEMBERED = 100_000  # (name, version) answers kept per generation


@dataclass(frozen=True, slots=True)
class Advisories:
    """The records in force (not withdrawn) by project, the accepted risks and
    the runtime policies, as of one serial."""

    generation: int
    by_name: Mapping[str, tuple[OsvRecord, ...]]
    accepted: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (id, project): why
    policies: Mapping[str, str] = field(default_factory=dict)  # source -> policy
    _answers: dict[tuple[str, str], tuple[OsvRecord, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def for_project(self, name: str) -> tuple[OsvRecord, ...]:
        """Every record in force that names the project `name` (normalised)."""
        return self.by_name.get(name, ())

    def affecting(self, name: str, version: str) -> tuple[OsvRecord, ...]:
        """The records in force that affect `version` of `name`, by id."""
        key = (name, version)
        found = self._answers.get(key)
        if found is None:
            found = tuple(r for r in self.by_name.get(name, ()) if r.affects(name, version))
            if len(self._answers) < MAX_REMEMBERED:
                self._answers[key] = found
        return found

    def accepted_reason(self, advisory_id: str, name: str) -> str | None:
        """Why an admin accepted `advisory_id` for `name`, or None if not accepted."""
        return self.accepted.get((advisory_id, name)) or self.accepted.get(
            (advisory_id, EVERY_PROJECT)
        )

    def policy_for(self, source: str, configured: str) -> str:
        """The policy of `source` (an upstream's label, or `local`): an admin's
        runtime choice, else the configured one."""
        return self.policies.get(source, configured)


NO_ADVISORIES = Advisories(generation=0, by_name={})


class AdvisoryIndexReader:
    """`Advisories` kept per serial of the store; see the module's docstring."""

    def __init__(
        self, sessions: sessionmaker[Session], *, watcher: SerialWatcher | None = None
    ) -> None:
        self._sessions = sessions
        self._watcher, self._owns_watcher = watcher_for(sessions, watcher)
        self._records: tuple[int, Mapping[str, tuple[OsvRecord, ...]]] = (0, {})
        self._lock = threading.Lock()  # loads run in worker threads
        self._state = PerSerial(self._watcher, self._load)

    async def current(self) -> Advisories:
        """The advisories as of the store's serial.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
        """
        return await self._state.current()

    @asynccontextmanager
    async def preloaded(self) -> AsyncIterator[None]:
        """While the block runs (the app serves): the records are loaded at once,
        in the background, rather than by the first request that needs them
        (seconds for osv.dev's whole export; an auditor's client may time out)."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._preload)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def _preload(self) -> None:
        # Not migrated or not reachable yet: then the first request loads them.
        with suppress(SQLAlchemyError):
            await self.current()

    def close(self) -> None:
        if self._owns_watcher:
            self._watcher.close()

    def _load(self) -> Advisories:
        with self._sessions() as session:
            generation = session.scalar(select(func.max(AdvisoryImport.id))) or 0
            accepted = {
                (advisory_id, project): reason
                for advisory_id, project, reason in session.execute(
                    select(
                        AdvisoryException.advisory_id,
                        AdvisoryException.project_name,
                        AdvisoryException.reason,
                    )
                )
            }
            # Not `dict(result)`: a Result has `keys()`, so `dict()` takes it for a mapping.
            policies = {
                source: policy
                for source, policy in session.execute(
                    select(AdvisoryPolicy.source, AdvisoryPolicy.policy)
                )
            }
            with self._lock:
                if self._records[0] != generation:
                    self._records = (generation, load_records(session))
                    # The records live until the next import: keep them out of the
                    # collector's full scans (a pause of up to a second each), as
                    # compose does for what the process builds at start. They hold
                    # no cycles, so dropping them later still frees them.
                    gc.freeze()
                by_name = self._records[1]
        return Advisories(generation, by_name, accepted, policies)


def load_records(session: Session) -> Mapping[str, tuple[OsvRecord, ...]]:
    """Every stored record in force, by the projects it names.

    A stored record that no longer reads (stored by an older, laxer packyard)
    is left out rather than failing every page.
    """
    by_name: dict[str, list[OsvRecord]] = {}
    rows = session.execute(
        select(Advisory.record).where(Advisory.withdrawn.is_(None)).order_by(Advisory.id)
    )
    for (text,) in rows:
        try:
            advisory = read_record(json.loads(text), stored=True)
        except (RecordRejected, ValueError):
            continue
        for name in advisory.affected:
            by_name.setdefault(name, []).append(advisory)
    return {name: tuple(items) for name, items in by_name.items()}
