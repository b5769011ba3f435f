"""The findings on in-house releases' requirements, kept in `dependency_findings`.

    findings = check_release(session, requirements)              # at upload, before storing
    record_release(session, "acme-app", "1.0", requirements, findings, now)
    new = refresh_findings(session, actor=..., origin=...)        # at the end of each import
    release_findings(session, "acme-app", "1.0")                  # what the API and pages show

`dependency_findings` has a row for EVERY requirement of every in-house
release, its `advisory_ids` empty when the requirement admits an unaffected
version: the requirements of a release are otherwise only inside its blobs
(a wheel's METADATA, an sdist's PKG-INFO), which an import, one database
transaction that may run in a command-line process, cannot read. So an
upload (or `packyard import`) records the requirements of its file once, and
every advisory import re-checks the stored rows with the rule of
`advisories/findings.py`, reading only the records of the dependencies that
appear in them. The files of one release may disagree (a platform wheel with
one more requirement): a release's rows are the union of its files'.

Every new finding of an import (a requirement that was not flagged before,
or is now affected by a record it was not) is an audit event,
`dependency-finding`: a row of the audit trail, in the import's transaction,
and a JSON line on the `packyard.audit` logger.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import Exists, delete, exists, select, update
from sqlalchemy.orm import Session

from packyard.advisories.findings import Finding, RequirementChecker
from packyard.advisories.index import Advisories
from packyard.advisories.records import OsvRecord, RecordRejected, read_record
from packyard.db.advisories import (
    Advisory,
    AdvisoryException,
    AdvisoryPackage,
    DependencyFinding,
)
from packyard.db.models import File, Project, upsert
from packyard.publish.audit import COMMAND_LINE, Origin, record

FINDING_ACTION = "dependency-finding"
CHUNK = 500  # names per IN (...), far below any parameter limit


@dataclass(frozen=True, slots=True)
class ReleaseFinding:
    """A finding and the in-house release it is on."""

    project: str
    version: str
    finding: Finding
    found_at: datetime


def check_release(session: Session, requirements: Sequence[Requirement]) -> list[Finding]:
    """The findings on `requirements` (one release's), by the stored advisories.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    if not requirements:
        return []
    names = {canonicalize_name(requirement.name) for requirement in requirements}
    advisories = stored_advisories(session, names)
    if not advisories.by_name:
        return []
    checker = RequirementChecker(advisories, stored_versions(session, advisories.by_name.keys()))
    found = (checker.check(requirement) for requirement in requirements)
    return [finding for finding in found if finding is not None]


def record_release(
    session: Session,
    project: str,
    version: str,
    requirements: Iterable[Requirement],
    findings: Iterable[Finding],
    now: datetime,
) -> None:
    """Add the rows of the requirements of one file of release `version` of
    `project` (normalised) that the release does not have yet, in the caller's
    transaction. Never changes a row already there (another file's, or an
    import's result): the next import re-checks them all.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be written.
    """
    flagged = {finding.requirement: finding for finding in findings}
    rows = [
        {
            "project_name": project,
            "version": version,
            "requirement": str(requirement),
            "dependency": canonicalize_name(requirement.name),
            "advisory_ids": _ids_text(flagged.get(str(requirement))),
            "found_at": now,
        }
        for requirement in requirements
    ]
    if rows:
        statement = upsert(session, DependencyFinding).on_conflict_do_nothing(
            index_elements=["project_name", "version", "requirement"]
        )
        session.execute(statement, rows)


def refresh_findings(
    session: Session, *, actor: str, origin: Origin = COMMAND_LINE
) -> list[ReleaseFinding]:
    """Re-check every stored requirement against the stored advisories, in the
    caller's transaction (an import's, after its records are written), and
    record an audit event for each new finding. Rows of releases that no
    longer have a file are removed.

    Returns the new findings, in the order of their events.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read or written.
    """
    session.execute(delete(DependencyFinding).where(~_release_exists()))
    rows = session.execute(
        select(
            DependencyFinding.id,
            DependencyFinding.project_name,
            DependencyFinding.version,
            DependencyFinding.requirement,
            DependencyFinding.dependency,
            DependencyFinding.advisory_ids,
        ).order_by(DependencyFinding.id)
    ).all()
    advisories = stored_advisories(session, {row.dependency for row in rows})
    checker = RequirementChecker(advisories, stored_versions(session, advisories.by_name.keys()))
    checked: dict[str, Finding | None] = {}  # by requirement text: each is parsed once
    now = datetime.now(UTC)
    changes: list[dict[str, object]] = []
    new: list[ReleaseFinding] = []
    for row in rows:
        finding: Finding | None = None
        if row.dependency in advisories.by_name:
            if row.requirement not in checked:
                checked[row.requirement] = _check_text(checker, row.requirement)
            finding = checked[row.requirement]
        before = set(_ids(row.advisory_ids))
        after = finding.advisory_ids if finding is not None else ()
        if before == set(after):
            continue
        changes.append({"id": row.id, "advisory_ids": _ids_text(finding), "found_at": now})
        if finding is not None and not before.issuperset(after):
            new.append(ReleaseFinding(row.project_name, row.version, finding, now))
            _audit(session, new[-1], sorted(set(after) - before), actor=actor, origin=origin)
    if changes:
        session.execute(update(DependencyFinding), changes)
    return new


def release_findings(session: Session, project: str, version: str) -> list[ReleaseFinding]:
    """The findings on release `version` (as stored: normalised) of `project`
    (normalised), by dependency then requirement; the requirements that passed
    are left out.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    rows = session.scalars(
        select(DependencyFinding)
        .where(
            DependencyFinding.project_name == project,
            DependencyFinding.version == version,
            DependencyFinding.advisory_ids != "[]",
        )
        .order_by(DependencyFinding.dependency, DependencyFinding.requirement)
    )
    return [
        ReleaseFinding(
            row.project_name,
            row.version,
            Finding(row.requirement, row.dependency, _ids(row.advisory_ids)),
            row.found_at,
        )
        for row in rows
    ]


def stored_advisories(session: Session, names: Collection[str]) -> Advisories:
    """The records in force that name any of `names` (normalised), and every
    accepted risk: what `check_requirement` needs about those dependencies.

    A stored record that no longer reads is left out, as `advisories/index.py`
    leaves it out of pages.
    """
    by_name: dict[str, list[OsvRecord]] = {}
    for chunk in _chunks(sorted(names)):
        ids = select(AdvisoryPackage.advisory_id).where(AdvisoryPackage.name.in_(chunk))
        texts = session.scalars(
            select(Advisory.record)
            .where(Advisory.id.in_(ids), Advisory.withdrawn.is_(None))
            .order_by(Advisory.id)
        )
        for text in texts:
            try:
                advisory = read_record(json.loads(text))
            except (RecordRejected, ValueError):
                continue
            for name in set(advisory.affected) & set(chunk):
                by_name.setdefault(name, []).append(advisory)
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
    return Advisories(
        generation=0,
        by_name={name: tuple(records) for name, records in by_name.items()},
        accepted=accepted,
    )


def stored_versions(session: Session, names: Collection[str]) -> dict[str, set[str]]:
    """The versions of the projects `names` (normalised) that packyard stores."""
    versions: dict[str, set[str]] = {}
    for chunk in _chunks(sorted(names)):
        rows = session.execute(
            select(Project.name, File.version).join(File).where(Project.name.in_(chunk)).distinct()
        )
        for name, version in rows:
            versions.setdefault(name, set()).add(version)
    return versions


def describe(finding: Finding, *, most: int | None = None) -> str:
    """One sentence about `finding`; `most` caps the advisory ids named."""
    ids = finding.advisory_ids
    named = ", ".join(ids if most is None else ids[:most])
    if most is not None and len(ids) > most:
        named += f" and {len(ids) - most} more"
    return (
        f"requirement {finding.requirement!r} admits only versions of {finding.dependency} "
        f"with known vulnerabilities ({named})"
    )


def _audit(
    session: Session, found: ReleaseFinding, new_ids: list[str], *, actor: str, origin: Origin
) -> None:
    record(
        session,
        actor=actor,
        action=FINDING_ACTION,
        origin=origin,
        project=found.project,
        version=found.version,
        requirement=found.finding.requirement,
        dependency=found.finding.dependency,
        advisory_ids=list(found.finding.advisory_ids),
        new_advisory_ids=new_ids,
    )


def _release_exists() -> Exists:
    return exists(
        select(File.id)
        .join(Project)
        .where(
            Project.name == DependencyFinding.project_name,
            File.version == DependencyFinding.version,
        )
    )


def _check_text(checker: RequirementChecker, text: str) -> Finding | None:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None  # stored by `record_release` from a parsed one: not expected
    return checker.check(requirement)


def _ids(text: str) -> tuple[str, ...]:
    try:
        ids = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()


def _ids_text(finding: Finding | None) -> str:
    return json.dumps(list(finding.advisory_ids) if finding is not None else [])


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk
