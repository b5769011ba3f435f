"""`/advisory-policies` and `/advisory-exceptions`: enforcement of known
vulnerabilities changed at runtime (administrators only).

`GET /advisory-policies` lists each source's policy (`local`, then the
upstreams), marked by origin: `config` or `database`. `PUT` sets a source's
policy, `DELETE ?source=` goes back to the configured one. `GET
/advisory-exceptions` lists the accepted risks, `POST` accepts one (a reason
is required; 201, or 200 when it replaced the reason of one already
accepted), `DELETE ?advisory_id=&project=` revokes one. The source travels in
the body or the query, never in the path: an upstream without a name is
labelled by its URL, slashes included.

The rules are `publish/advisory_rules.py`'s; each change commits with its
audit event and a serial bump, so every replica applies it on its next request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.db.advisories import EVERY_PROJECT
from packyard.publish import advisory_rules
from packyard.publish.advisory_rules import PolicyOrigin
from packyard.routes.api.deps import Caller, RequestOrigin, Services, audited, require_admin

router = APIRouter(tags=["advisories"])

Policy = Literal["warn", "yank", "hide", "deny"]
SOURCE_DESCRIPTION = (
    "`local` (in-house packages), or an upstream's configured name (its URL if it has none)."
)
PROJECT_DESCRIPTION = "A project name, or `*` for every project."


class SourcePolicyOut(BaseModel):
    source: str
    policy: Policy = Field(description="In force for the source's files.")
    origin: PolicyOrigin = Field(description="`config`: from the configuration file.")
    configured: Policy = Field(description="The configuration's policy, shown beside an override.")
    known: bool = Field(
        description="False: only a stored override names it; it applies to nothing."
    )
    set_by: str | None = None
    set_at: datetime | None = None


class SourcePolicyIn(BaseModel):
    source: str = Field(description=SOURCE_DESCRIPTION)
    policy: Policy


class AcceptedRiskOut(BaseModel):
    advisory_id: str
    project: str = Field(description=PROJECT_DESCRIPTION)
    reason: str
    accepted_by: str
    accepted_at: datetime


class AcceptedRiskIn(BaseModel):
    advisory_id: str = Field(description="The record's own id, e.g. PYSEC-2021-98 (not an alias).")
    project: str = Field(default=EVERY_PROJECT, description=PROJECT_DESCRIPTION)
    reason: str = Field(description="Why the risk is accepted (required; kept in the audit trail).")


def _policy(found: advisory_rules.SourcePolicy) -> SourcePolicyOut:
    return SourcePolicyOut(
        source=found.source,
        policy=found.policy,  # type: ignore[arg-type]  # checked by the database
        origin=found.origin,
        configured=found.configured,  # type: ignore[arg-type]  # checked by the settings
        known=found.known,
        set_by=found.by,
        set_at=found.at,
    )


def _risk(risk: advisory_rules.AcceptedRisk) -> AcceptedRiskOut:
    return AcceptedRiskOut(
        advisory_id=risk.advisory_id,
        project=risk.project,
        reason=risk.reason,
        accepted_by=risk.by,
        accepted_at=risk.at,
    )


@router.get("/advisory-policies", summary="List each source's advisory policy")
def list_policies(
    identity: Caller,
    session: Annotated[Session, audited("advisory-policy-list")],
    services: Services,
) -> list[SourcePolicyOut]:
    require_admin(session, identity)
    found = advisory_rules.list_policies(session, services.advisories, services.upstreams)
    return [_policy(item) for item in found]


@router.put("/advisory-policies", summary="Set a source's advisory policy")
def set_policy(
    body: SourcePolicyIn,
    identity: Caller,
    session: Annotated[Session, audited("advisory-policy")],
    origin: RequestOrigin,
    services: Services,
) -> SourcePolicyOut:
    require_admin(session, identity)
    found = advisory_rules.set_policy(
        session,
        identity,
        body.source,
        body.policy,
        settings=services.advisories,
        upstreams=services.upstreams,
        origin=origin,
    )
    return _policy(found)


@router.delete("/advisory-policies", summary="Go back to a source's configured advisory policy")
def clear_policy(
    source: Annotated[str, Query(description=SOURCE_DESCRIPTION)],
    identity: Caller,
    session: Annotated[Session, audited("advisory-policy")],
    origin: RequestOrigin,
    services: Services,
) -> SourcePolicyOut:
    """The policy now in force (the configured one)."""
    require_admin(session, identity)
    found = advisory_rules.set_policy(
        session,
        identity,
        source,
        None,
        settings=services.advisories,
        upstreams=services.upstreams,
        origin=origin,
    )
    return _policy(found)


@router.get("/advisory-exceptions", summary="List the accepted advisory risks")
def list_exceptions(
    identity: Caller, session: Annotated[Session, audited("advisory-exception-list")]
) -> list[AcceptedRiskOut]:
    require_admin(session, identity)
    return [_risk(risk) for risk in advisory_rules.list_exceptions(session)]


@router.post("/advisory-exceptions", status_code=201, summary="Accept an advisory's risk")
def accept(
    body: AcceptedRiskIn,
    identity: Caller,
    session: Annotated[Session, audited("advisory-accept")],
    origin: RequestOrigin,
    response: Response,
) -> AcceptedRiskOut:
    """201 with the accepted risk; 200 when it was accepted already (its reason replaced)."""
    require_admin(session, identity)
    risk, created = advisory_rules.accept(
        session, identity, body.advisory_id, body.project, body.reason, origin=origin
    )
    if not created:
        response.status_code = 200
    return _risk(risk)


@router.delete("/advisory-exceptions", status_code=204, summary="Revoke an accepted advisory risk")
def revoke(
    advisory_id: str,
    identity: Caller,
    session: Annotated[Session, audited("advisory-revoke")],
    origin: RequestOrigin,
    project: Annotated[str, Query(description=PROJECT_DESCRIPTION)] = EVERY_PROJECT,
) -> Response:
    require_admin(session, identity)
    advisory_rules.revoke(session, identity, advisory_id, project, origin=origin)
    return Response(status_code=204)
