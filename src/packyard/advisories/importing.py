"""An import of OSV records into the database: all of it, or none of it.

    report = import_entries(sessions, read_source(path), actor="cli:root", source=str(path))

One transaction per import, so a replica never sees half of one. A record
replaces the stored one of its id only when its `modified` is newer, so the
same source imported twice changes nothing (and a PyPA snapshot imported
after osv.dev's newer export does not roll records back). Records are only
ever added or replaced, never dropped because a source lacks them: a site
may import several sources. A record that says `withdrawn` is kept, for its
page and the OSV API, and no longer applies to any version.

The import bumps the store's serial, so every replica reloads its advisory
index (`advisories/index.py`) at its next request, and records an audit event.
Before that, still in its transaction, the requirements of in-house releases
are checked again (`advisories/dependency_findings.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.dependency_findings import refresh_findings
from packyard.advisories.records import OsvRecord
from packyard.advisories.sources import Entry
from packyard.db.advisories import Advisory, AdvisoryImport, AdvisoryPackage
from packyard.db.serial import bump_serial
from packyard.publish.audit import COMMAND_LINE, Origin, record

# Records per batch, and ids per IN (...). A parsed record is large (a version
# list of hundreds): the snapshot's import grows a process by 16 MB with 100 a
# batch, 41 MB with 500 (bench/RESULTS.md), for no measurable gain in time.
CHUNK = 100
IMPORT_ACTION = "advisories-import"


@dataclass(slots=True)
class ImportReport:
    """What one import did. `skipped` pairs a file's name with why it was skipped."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # kept, with a part passed over
    generation: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "withdrawn": len(self.withdrawn),
            "unchanged": self.unchanged,
            "skipped": len(self.skipped),
        }


def import_entries(
    sessions: sessionmaker[Session],
    entries: Iterable[Entry],
    *,
    actor: str,
    source: str,
    origin: Origin = COMMAND_LINE,
) -> ImportReport:
    """Read `entries` and store what is new, in one transaction.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be written; nothing
            of this import is then stored.
        Whatever iterating `entries` raises (`SourceUnreadable`): nothing is stored.
    """
    with sessions.begin() as session:
        return import_into(session, entries, actor=actor, source=source, origin=origin)


def import_into(
    session: Session,
    entries: Iterable[Entry],
    *,
    actor: str,
    source: str,
    origin: Origin = COMMAND_LINE,
) -> ImportReport:
    """`import_entries` in the caller's transaction, which commits it (or not):
    for a caller that must decide inside that transaction whether to import at
    all (`advisories/refresh.py`: one replica per period).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be written.
    """
    report = ImportReport()
    for batch in _batches(_unique(entries, report)):
        _store(session, batch, report)
    report.generation = _log_import(session, report, actor=actor, source=source)
    record(
        session,
        actor=actor,
        action=IMPORT_ACTION,
        origin=origin,
        source=source,
        counts=report.summary(),
    )
    refresh_findings(session, actor=actor, origin=origin)  # in-house requirements re-checked
    bump_serial(session)
    return report


def _unique(entries: Iterable[Entry], report: ImportReport) -> Iterator[OsvRecord]:
    """The readable records; a second file with an id already read is skipped."""
    origins: dict[str, str] = {}
    for entry in entries:
        advisory = entry.record
        if advisory is None:
            report.skipped.append((entry.origin, entry.problem or "unreadable"))
            continue
        first = origins.get(advisory.id)
        if first is not None:
            report.skipped.append((entry.origin, f"duplicate id {advisory.id} (also in {first})"))
            continue
        origins[advisory.id] = entry.origin
        report.notes += ((entry.origin, note) for note in advisory.notes)
        yield advisory


def _batches(records: Iterator[OsvRecord]) -> Iterator[list[OsvRecord]]:
    """`CHUNK` records at a time, so an import holds one batch in memory, not all."""
    while batch := list(islice(records, CHUNK)):
        yield batch


def _store(session: Session, batch: list[OsvRecord], report: ImportReport) -> None:
    """Store the records of `batch` that are new or newer than the stored ones."""
    stored = _stored_versions(session, [advisory.id for advisory in batch])
    new: list[OsvRecord] = []
    for advisory in batch:
        known = stored.get(advisory.id)
        if known is not None and known[0] >= advisory.modified:
            report.unchanged += 1
            continue
        (report.changed if known is not None else report.added).append(advisory.id)
        if advisory.withdrawn is not None and (known is None or not known[1]):
            report.withdrawn.append(advisory.id)
        new.append(advisory)
    _replace(session, new, replaced=[a.id for a in new if a.id in stored])


def _stored_versions(session: Session, ids: list[str]) -> dict[str, tuple[datetime, bool]]:
    """`modified` and whether withdrawn, of the stored records among `ids`."""
    rows = session.execute(
        select(Advisory.id, Advisory.modified, Advisory.withdrawn).where(Advisory.id.in_(ids))
    )
    return {
        advisory_id: (modified, withdrawn is not None) for advisory_id, modified, withdrawn in rows
    }


def _replace(session: Session, records: list[OsvRecord], *, replaced: list[str]) -> None:
    if replaced:
        session.execute(delete(AdvisoryPackage).where(AdvisoryPackage.advisory_id.in_(replaced)))
        session.execute(delete(Advisory).where(Advisory.id.in_(replaced)))
    if not records:
        return
    now = datetime.now(UTC)
    session.execute(insert(Advisory), [_row(advisory, now) for advisory in records])
    session.execute(
        insert(AdvisoryPackage),
        [{"advisory_id": a.id, "name": name} for a in records for name in a.affected],
    )


def _row(advisory: OsvRecord, now: datetime) -> dict[str, object]:
    return {
        "id": advisory.id,
        "modified": advisory.modified,
        "published": advisory.published,
        "withdrawn": advisory.withdrawn,
        "summary": advisory.summary,
        "aliases": json.dumps(list(advisory.aliases)),
        "record": json.dumps(advisory.data, separators=(",", ":"), ensure_ascii=False),
        "imported_at": now,
    }


def _log_import(session: Session, report: ImportReport, *, actor: str, source: str) -> int:
    counts = report.summary()
    del counts["unchanged"]
    row = AdvisoryImport(at=datetime.now(UTC), actor=actor, source=source, **counts)
    session.add(row)
    session.flush()
    return row.id
