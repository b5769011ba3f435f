"""What the browser's pages ask of the advisories, in one place.

    vulnerabilities = Vulnerabilities(reader, sessions)
    await vulnerabilities.for_project("jinja2", versions, "2.10")  # badge, list, marks
    await vulnerabilities.page("PYSEC-2019-217")                     # /advisories/{id}
    await vulnerabilities.names()                                    # has:advisories
    await vulnerabilities.findings("acme-app", "1.0")                # in-house requirements

Project pages and search read the process's one `AdvisoryIndexReader` (in
memory, reloaded per serial); a record's own page and the dependency
findings are read from the database, in a worker thread: they are not on a
hot path, and a withdrawn record (which the index leaves out) keeps its page.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import anyio.to_thread
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.index import AdvisoryIndexReader
from packyard.advisories.records import OsvRecord
from packyard.browser.advisories import (
    NO_PROJECT_ADVISORIES,
    DescribedProject,
    ProjectAdvisories,
    project_advisories,
)
from packyard.browser.advisory_page import AdvisoryPage, load_advisory_page
from packyard.db.advisories import DependencyFinding

DESCRIBED_PROJECTS = 1_000  # projects whose described records are kept


@dataclass(frozen=True, slots=True)
class FindingRow:
    """An in-house release's requirement that admits only affected versions."""

    requirement: str
    dependency: str  # normalised
    advisory_ids: tuple[str, ...]


class Vulnerabilities:
    """The advisories for the browser, over `reader` and the store's `sessions`."""

    def __init__(self, reader: AdvisoryIndexReader, sessions: sessionmaker[Session]) -> None:
        self._reader = reader
        self._sessions = sessions
        # By (import generation, project): records change only with an import.
        self._described: OrderedDict[tuple[int, str], DescribedProject] = OrderedDict()

    async def for_project(
        self, name: str, versions: Iterable[str], shown: str
    ) -> ProjectAdvisories:
        """The advisories of `name` (normalised) for its page at version `shown`
        (one of `versions`, the release history), with marks for `versions`.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
        """
        state = await self._reader.current()
        records = state.for_project(name)
        if not records:
            return NO_PROJECT_ADVISORIES
        history = tuple(versions)
        key = (state.generation, name)
        described = self._described.get(key)
        if described is None or not described.knows(history):
            # Hundreds of records and releases take milliseconds: off the event loop.
            described = await anyio.to_thread.run_sync(
                _described, described, name, records, history
            )
            self._keep(key, described)
        return project_advisories(state, described, history, shown)

    def _keep(self, key: tuple[int, str], described: DescribedProject) -> None:
        self._described[key] = described
        self._described.move_to_end(key)
        while len(self._described) > DESCRIBED_PROJECTS:
            self._described.popitem(last=False)

    async def names(self) -> Collection[str]:
        """Every project that a record in force names (the `has:advisories` filter)."""
        return (await self._reader.current()).by_name.keys()

    async def page(self, advisory_id: str) -> AdvisoryPage | None:
        """The page of record `advisory_id`, withdrawn or not; None: not stored."""
        state = await self._reader.current()

        def load() -> AdvisoryPage | None:
            with self._sessions() as session:
                return load_advisory_page(session, advisory_id, state)

        return await anyio.to_thread.run_sync(load)

    async def findings(self, name: str, version: str) -> tuple[FindingRow, ...]:
        """The dependency findings of in-house release `version` of `name`
        (`advisories/dependency_findings.py` writes them)."""

        def load() -> tuple[FindingRow, ...]:
            with self._sessions() as session:
                rows = session.scalars(
                    select(DependencyFinding)
                    .where(DependencyFinding.project_name == name)
                    .order_by(DependencyFinding.dependency, DependencyFinding.requirement)
                )
                found = (
                    FindingRow(row.requirement, row.dependency, _ids(row.advisory_ids))
                    for row in rows
                    if _same_version(row.version, version)
                )
                # Every requirement has a row; those no record affects have no ids.
                return tuple(finding for finding in found if finding.advisory_ids)

        return await anyio.to_thread.run_sync(load)


def _described(
    known: DescribedProject | None,
    name: str,
    records: Iterable[OsvRecord],
    versions: tuple[str, ...],
) -> DescribedProject:
    """`known` (else `records` described anew) with the hits of `versions` worked out."""
    described = known or DescribedProject(name, records)
    described.hits(versions)
    return described


def _ids(text: str) -> tuple[str, ...]:
    try:
        ids = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()


def _same_version(stored: str, shown: str) -> bool:
    """By PEP 440 (`1.0` is `1.0.0`), as pages find releases; else as text."""
    try:
        return Version(stored) == Version(shown)
    except InvalidVersion:
        return stored == shown
