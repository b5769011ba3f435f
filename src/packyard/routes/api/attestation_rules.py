"""Attestation requirements (PEP 740), administrators only.

`GET /attestation-requirements` gives the configured requirement and each
project that has its own; `PUT /projects/{name}/attestation-requirement`
sets a project's own (`none`, `ci`, `all`) or clears it (`null`). The rules
are `publish/attestation_rules.py`'s; each change is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.publish import attestation_rules
from packyard.routes.api.deps import Caller, RequestOrigin, Services, audited, require_admin
from packyard.settings import AttestationRequirement

router = APIRouter(tags=["attestations"])


class RequirementOut(BaseModel):
    project: str
    requirement: AttestationRequirement = Field(description="In force for the project's uploads.")
    own: bool = Field(description="False: the configured `[attestations] require`.")


class RequirementsOut(BaseModel):
    configured: AttestationRequirement
    projects: list[RequirementOut] = Field(description="Projects with a requirement of their own.")


class RequirementIn(BaseModel):
    requirement: AttestationRequirement | None = Field(
        description="`none`, `ci` (uploads by CI jobs), `all`; null: the configured one."
    )


def _out(found: attestation_rules.ProjectRequirement) -> RequirementOut:
    return RequirementOut(project=found.project, requirement=found.requirement, own=found.own)


@router.get("/attestation-requirements", summary="List the attestation requirements")
def list_requirements(
    identity: Caller,
    session: Annotated[Session, audited("attestation-requirement-list")],
    services: Services,
) -> RequirementsOut:
    require_admin(session, identity)
    configured = services.attestations.require
    found = attestation_rules.list_requirements(session, configured)
    return RequirementsOut(configured=configured, projects=[_out(item) for item in found])


@router.put(
    "/projects/{name}/attestation-requirement",
    summary="Set or clear a project's attestation requirement",
)
def set_requirement(
    name: str,
    body: RequirementIn,
    identity: Caller,
    session: Annotated[Session, audited("attestation-requirement")],
    origin: RequestOrigin,
    services: Services,
) -> RequirementOut:
    require_admin(session, identity)
    found = attestation_rules.set_requirement(
        session,
        identity,
        name,
        body.requirement,
        configured=services.attestations.require,
        origin=origin,
    )
    return _out(found)
