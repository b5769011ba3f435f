"""Known vulnerabilities by project, by release and by id (administrators only, read-only).

    GET /projects/{project}/advisories                     the records naming a project
    GET /projects/{project}/releases/{version}/advisories  those affecting one release,
                                                           and the policy that applies
    GET /advisories/{advisory_id}                          one record, withdrawn or not

Read from the database, as committed: the records (`db.advisories`, parsed
by `advisories.records`, so a version is affected exactly when the index and
the OSV API say so), the accepted risks and the runtime policies. Changing
policies and accepting risks is `advisory_rules.py`'s.

A project is known when it is in-house or when some stored record names it;
any other name is a 404 (this API does not ask the upstreams).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.advisories.records import OsvRecord, RecordRejected, read_record
from packyard.browser.advisories import describe_affected, fixed_versions
from packyard.db.advisories import EVERY_PROJECT, Advisory, AdvisoryException, AdvisoryPackage
from packyard.db.models import Project
from packyard.errors import NotFound
from packyard.model import SOURCE_LOCAL
from packyard.publish import advisory_rules
from packyard.publish.name_guard import check_name
from packyard.publish.yanks import normalise_version
from packyard.routes.api.deps import Caller, Services, audited, require_admin

router = APIRouter(tags=["advisories"])

Transaction = Annotated[Session, audited("advisory-list")]


class AcceptedOut(BaseModel):
    project: str = Field(description="The project it was accepted for, or `*`: every project.")
    reason: str
    accepted_by: str
    accepted_at: datetime


class AdvisoryOut(BaseModel):
    id: str
    aliases: list[str] = Field(description="CVE, GHSA... ids of the same vulnerability.")
    summary: str | None
    published: datetime | None
    modified: datetime
    withdrawn: datetime | None = Field(description="Set: the record applies to no version.")
    malicious: bool = Field(description="A `MAL-` record: always refused, whatever the policy.")
    affected: list[str] = Field(
        description="The project's affected versions as people read them: ranges "
        "(`>=2.0, <2.10.1`), then the versions listed outside every range."
    )
    fixed: list[str] = Field(description="Versions a fix ends a range at.")
    accepted: AcceptedOut | None = Field(description="Set: an admin accepted the risk.")


class ProjectAdvisoriesOut(BaseModel):
    project: str
    in_house: bool
    advisories: list[AdvisoryOut] = Field(description="The newest published first.")


class SourcePolicyOut(BaseModel):
    source: str = Field(description="`local` (in-house), or an upstream's label.")
    policy: str = Field(description="warn, yank, hide or deny, after runtime changes.")


class ReleaseAdvisoriesOut(BaseModel):
    project: str
    version: str = Field(description="Normalised (PEP 440).")
    in_house: bool
    advisories: list[AdvisoryOut] = Field(description="The records in force affecting it.")
    policies: list[SourcePolicyOut] = Field(
        description="What each source that may serve the release does with affected files: "
        "`local` for an in-house project; else every upstream, in priority order (the "
        "first that has the project serves it). Accepted risks are not enforced; "
        "malicious-package records are always denied."
    )


class ProjectAffectedOut(BaseModel):
    name: str = Field(description="Normalised.")
    affected: list[str]
    fixed: list[str]
    accepted: AcceptedOut | None


class AdvisoryRecordOut(BaseModel):
    id: str
    aliases: list[str]
    summary: str | None
    published: datetime | None
    modified: datetime
    withdrawn: datetime | None
    malicious: bool
    projects: list[ProjectAffectedOut] = Field(description="The PyPI projects it names.")
    record: dict[str, Any] = Field(description="The OSV record as imported.")


@router.get("/projects/{project}/advisories", summary="A project's known vulnerabilities")
def project_advisories(
    project: str,
    identity: Caller,
    session: Transaction,
    withdrawn: Annotated[bool, Query(description="Include withdrawn records too.")] = False,
) -> ProjectAdvisoriesOut:
    require_admin(session, identity)
    name = check_name(project)
    in_house = _in_house(session, name)
    rows = _records_naming(session, name, withdrawn=True)
    if not in_house and not rows:
        raise NotFound(f"No in-house project and no advisory is named {name!r}.")
    accepted = _accepted(session, name)
    return ProjectAdvisoriesOut(
        project=name,
        in_house=in_house,
        advisories=[
            _advisory(row, record, name, accepted)
            for row, record in rows
            if withdrawn or row.withdrawn is None
        ],
    )


@router.get(
    "/projects/{project}/releases/{version}/advisories",
    summary="The known vulnerabilities of one release",
)
def release_advisories(
    project: str, version: str, identity: Caller, session: Transaction, services: Services
) -> ReleaseAdvisoriesOut:
    require_admin(session, identity)
    name, wanted = check_name(project), normalise_version(version)
    in_house = _in_house(session, name)
    rows = _records_naming(session, name, withdrawn=False)
    if not in_house and not rows:
        raise NotFound(f"No in-house project and no advisory is named {name!r}.")
    accepted = _accepted(session, name)
    policies = advisory_rules.list_policies(session, services.advisories, services.upstreams)
    sources = [SOURCE_LOCAL] if in_house else [u.label for u in services.upstreams]
    return ReleaseAdvisoriesOut(
        project=name,
        version=wanted,
        in_house=in_house,
        advisories=[
            _advisory(row, record, name, accepted)
            for row, record in rows
            if record.affects(name, wanted)
        ],
        policies=[
            SourcePolicyOut(source=found.source, policy=found.policy)
            for found in policies
            if found.source in sources
        ],
    )


@router.get("/advisories/{advisory_id}", summary="One advisory, withdrawn or not")
def advisory_record(advisory_id: str, identity: Caller, session: Transaction) -> AdvisoryRecordOut:
    require_admin(session, identity)
    row = session.get(Advisory, advisory_id)
    if row is None:
        raise NotFound(f"There is no advisory {advisory_id!r}.")
    data = json.loads(row.record)
    record = _read(row)
    names = sorted(record.affected) if record is not None else []
    projects = []
    for name in names:
        entries = record.affected[name] if record is not None else ()
        projects.append(
            ProjectAffectedOut(
                name=name,
                affected=list(describe_affected(entries)),
                fixed=list(fixed_versions(entries)),
                accepted=_accepted(session, name).get(row.id),
            )
        )
    return AdvisoryRecordOut(
        id=row.id,
        aliases=json.loads(row.aliases or "[]"),
        summary=row.summary,
        published=row.published,
        modified=row.modified,
        withdrawn=row.withdrawn,
        malicious=record.malicious if record is not None else False,
        projects=projects,
        record=data if isinstance(data, dict) else {},
    )


def _in_house(session: Session, name: str) -> bool:
    return session.scalar(select(Project.id).where(Project.name == name)) is not None


def _records_naming(
    session: Session, name: str, *, withdrawn: bool
) -> list[tuple[Advisory, OsvRecord]]:
    """The stored records naming `name`, the newest published first; a record that
    no longer reads (stored by an older, laxer packyard) is left out, as the index does."""
    query = (
        select(Advisory)
        .join(AdvisoryPackage, AdvisoryPackage.advisory_id == Advisory.id)
        .where(AdvisoryPackage.name == name)
    )
    if not withdrawn:
        query = query.where(Advisory.withdrawn.is_(None))
    found = []
    for row in session.scalars(query):
        record = _read(row)
        if record is not None:
            found.append((row, record))
    found.sort(key=lambda pair: (-(pair[0].published or pair[0].modified).timestamp(), pair[0].id))
    return found


def _read(row: Advisory) -> OsvRecord | None:
    try:
        return read_record(json.loads(row.record))
    except (RecordRejected, ValueError):
        return None


def _accepted(session: Session, name: str) -> dict[str, AcceptedOut]:
    """The risks accepted for `name` by advisory id; one accepted for that project
    wins over one accepted for every project."""
    rows = session.scalars(
        select(AdvisoryException).where(AdvisoryException.project_name.in_((name, EVERY_PROJECT)))
    )
    found: dict[str, AcceptedOut] = {}
    # Every project's first, so that one for this project replaces it.
    for row in sorted(rows, key=lambda r: r.project_name != EVERY_PROJECT):
        found[row.advisory_id] = AcceptedOut(
            project=row.project_name,
            reason=row.reason,
            accepted_by=row.accepted_by,
            accepted_at=row.created_at,
        )
    return found


def _advisory(
    row: Advisory, record: OsvRecord, name: str, accepted: dict[str, AcceptedOut]
) -> AdvisoryOut:
    entries = record.affected.get(name, ())
    return AdvisoryOut(
        id=row.id,
        aliases=list(record.aliases),
        summary=row.summary,
        published=row.published,
        modified=row.modified,
        withdrawn=row.withdrawn,
        malicious=record.malicious,
        affected=list(describe_affected(entries)),
        fixed=list(fixed_versions(entries)),
        accepted=accepted.get(row.id),
    )
