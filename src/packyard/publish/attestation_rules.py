"""A project's own attestation requirement, set by an admin (PEP 740).

`[attestations] require` applies to every project; an admin sets a project's
own (`none`, `ci` or `all`, `attestations/requirement.py`) or clears it back
to the configured one. Each change works in the caller's transaction: the
`projects` row, an audit event (`attestation-requirement`) and a serial bump
commit together. Only in-house projects have one: an upstream's files are
not uploaded here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.attestations.requirement import check_requirement
from packyard.auth.identity import Identity
from packyard.db.models import Project
from packyard.db.serial import bump_serial
from packyard.errors import NotFound
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.name_guard import check_name
from packyard.publish.yanks import require_admin
from packyard.settings import AttestationRequirement


@dataclass(frozen=True, slots=True)
class ProjectRequirement:
    """A project's requirement in force, and whether it is its own (else configured)."""

    project: str
    requirement: AttestationRequirement
    own: bool


def set_requirement(
    session: Session,
    identity: Identity,
    project: str,
    requirement: str | None,
    *,
    configured: AttestationRequirement,
    origin: Origin = COMMAND_LINE,
) -> ProjectRequirement:
    """Set `project`'s own requirement, or clear it with None; the one in force after.

    Raises:
        InvalidRequest: an invalid name or requirement.
        PermissionDenied: `identity` is not an admin.
        NotFound: no such in-house project.
    """
    name = check_name(project.strip())
    require_admin(session, identity, "set the attestation requirement of", name)
    wanted = None if requirement is None else check_requirement(requirement.strip())
    row = session.scalar(select(Project).where(Project.name == name))
    if row is None:
        raise NotFound(f"There is no in-house project {name!r}: only those take uploads.")
    if row.attestation_requirement != wanted:
        row.attestation_requirement = wanted
        bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="attestation-requirement",
        origin=origin,
        project=name,
        requirement=wanted,
    )
    return requirement_of(row, configured)


def list_requirements(
    session: Session, configured: AttestationRequirement
) -> list[ProjectRequirement]:
    """The projects that have a requirement of their own, by name."""
    rows = session.scalars(
        select(Project).where(Project.attestation_requirement.is_not(None)).order_by(Project.name)
    )
    return [requirement_of(row, configured) for row in rows]


def requirement_of(row: Project, configured: AttestationRequirement) -> ProjectRequirement:
    """The requirement in force for the project of `row`."""
    own = row.attestation_requirement
    if own is None:
        return ProjectRequirement(row.name, configured, False)
    return ProjectRequirement(row.name, check_requirement(own), True)
