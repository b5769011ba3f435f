"""`/policies`: curation of the upstreams at runtime (administrators only).

`GET /policies` lists every upstream's allow and deny globs and its cool-down,
each marked by origin: `config` (the configuration file) or `database` (added
here or with `packyard policy`). `POST /policies/rules` and
`DELETE /policies/rules` add and remove stored globs, `PUT /policies/cooldown`
overrides the cool-down (`days: null` goes back to the configured one);
`POST /policies/cooldown-exemptions` and `DELETE /policies/cooldown-exemptions`
exempt a project from its upstream's cool-down and take that back. The
upstream travels in the body or the query, never in the path: an upstream
without a name is labelled by its URL, slashes included.

The rules are `publish/policies.py`'s; each change commits with its audit
event and a serial bump, so every replica applies it on its next request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.publish import cooldown_exemptions, policies
from packyard.publish.policies import RuleKind, RuleOrigin
from packyard.routes.api.deps import Caller, RequestOrigin, Services, audited, require_admin
from packyard.settings import UpstreamSettings

router = APIRouter(prefix="/policies", tags=["policies"])

UPSTREAM_DESCRIPTION = "The upstream's configured name, or its URL if it has none."


def configured_upstreams(services: Services) -> tuple[UpstreamSettings, ...]:
    """The upstreams of the configuration, in priority order."""
    return services.upstreams


Upstreams = Annotated[tuple[UpstreamSettings, ...], Depends(configured_upstreams)]


class RuleOut(BaseModel):
    upstream: str
    kind: RuleKind
    glob: str = Field(description="Normalised like a project name (`Acme_*` is `acme-*`).")
    origin: RuleOrigin = Field(description="`config`: change it in the configuration file.")
    added_by: str | None = None
    added_at: datetime | None = None


class CooldownOut(BaseModel):
    upstream: str
    days: float = Field(description="In force: files younger than this are hidden.")
    origin: RuleOrigin
    configured_days: float
    set_by: str | None = None
    set_at: datetime | None = None


class ExemptionOut(BaseModel):
    upstream: str
    project: str = Field(description="Normalised; its files skip the upstream's cool-down.")
    reason: str
    added_by: str
    added_at: datetime


class UpstreamPolicyOut(BaseModel):
    upstream: str
    configured: bool = Field(description="False: only stored rules name it; they apply to nothing.")
    cooldown: CooldownOut
    rules: list[RuleOut]
    cooldown_exemptions: list[ExemptionOut]


class RuleIn(BaseModel):
    upstream: str = Field(description=UPSTREAM_DESCRIPTION)
    kind: RuleKind
    glob: str = Field(description="fnmatch glob of project names, e.g. `acme-*`.")


class CooldownIn(BaseModel):
    upstream: str = Field(description=UPSTREAM_DESCRIPTION)
    days: float | None = Field(description="0 for none; null for the configured cool-down.")


class ExemptionIn(BaseModel):
    upstream: str = Field(description=UPSTREAM_DESCRIPTION)
    project: str
    reason: str = Field(description="Why it may skip the cool-down; kept and audited.")


def _exemption(exemption: policies.Exemption) -> ExemptionOut:
    return ExemptionOut(
        upstream=exemption.upstream,
        project=exemption.project,
        reason=exemption.reason,
        added_by=exemption.by,
        added_at=exemption.at,
    )


def _rule(rule: policies.PolicyRule) -> RuleOut:
    return RuleOut(
        upstream=rule.upstream,
        kind=rule.kind,
        glob=rule.glob,
        origin=rule.origin,
        added_by=rule.by,
        added_at=rule.at,
    )


def _cooldown(cooldown: policies.Cooldown) -> CooldownOut:
    return CooldownOut(
        upstream=cooldown.upstream,
        days=cooldown.days,
        origin=cooldown.origin,
        configured_days=cooldown.configured_days,
        set_by=cooldown.by,
        set_at=cooldown.at,
    )


@router.get("", summary="List the curation of every upstream")
def list_policies(
    identity: Caller, session: Annotated[Session, audited("policy-list")], upstreams: Upstreams
) -> list[UpstreamPolicyOut]:
    require_admin(session, identity)
    return [
        UpstreamPolicyOut(
            upstream=found.upstream,
            configured=found.configured,
            cooldown=_cooldown(found.cooldown),
            rules=[_rule(rule) for rule in found.rules],
            cooldown_exemptions=[_exemption(exemption) for exemption in found.exemptions],
        )
        for found in policies.list_rules(session, upstreams)
    ]


@router.post("/rules", status_code=201, summary="Add an allow or deny glob")
def add_rule(
    body: RuleIn,
    identity: Caller,
    session: Annotated[Session, audited("policy-add")],
    origin: RequestOrigin,
    upstreams: Upstreams,
    response: Response,
) -> RuleOut:
    """201 with the new rule; 200 when it was stored already (nothing changes)."""
    require_admin(session, identity)
    rule, created = policies.add_rule(
        session, identity, body.upstream, body.kind, body.glob, upstreams=upstreams, origin=origin
    )
    if not created:
        response.status_code = 200
    return _rule(rule)


@router.delete("/rules", status_code=204, summary="Remove a stored allow or deny glob")
def remove_rule(
    upstream: Annotated[str, Query(description=UPSTREAM_DESCRIPTION)],
    kind: RuleKind,
    glob: str,
    identity: Caller,
    session: Annotated[Session, audited("policy-remove")],
    origin: RequestOrigin,
    upstreams: Upstreams,
) -> Response:
    """Rules of the configuration file (origin `config`) are changed there: 400."""
    require_admin(session, identity)
    policies.remove_rule(
        session, identity, upstream, kind, glob, upstreams=upstreams, origin=origin
    )
    return Response(status_code=204)


@router.put("/cooldown", summary="Override an upstream's cool-down, or reset it")
def set_cooldown(
    body: CooldownIn,
    identity: Caller,
    session: Annotated[Session, audited("policy-cooldown")],
    origin: RequestOrigin,
    upstreams: Upstreams,
) -> CooldownOut:
    require_admin(session, identity)
    cooldown = policies.set_cooldown(
        session, identity, body.upstream, body.days, upstreams=upstreams, origin=origin
    )
    return _cooldown(cooldown)


@router.post("/cooldown-exemptions", status_code=201, summary="Exempt a project from the cool-down")
def exempt(
    body: ExemptionIn,
    identity: Caller,
    session: Annotated[Session, audited("policy-exempt")],
    origin: RequestOrigin,
    upstreams: Upstreams,
    response: Response,
) -> ExemptionOut:
    """201 with the new exemption; 200 when it existed (its reason is replaced)."""
    require_admin(session, identity)
    exemption, created = cooldown_exemptions.exempt(
        session,
        identity,
        body.upstream,
        body.project,
        body.reason,
        upstreams=upstreams,
        origin=origin,
    )
    if not created:
        response.status_code = 200
    return _exemption(exemption)


@router.delete(
    "/cooldown-exemptions", status_code=204, summary="Hold a project back by the cool-down again"
)
def unexempt(
    upstream: Annotated[str, Query(description=UPSTREAM_DESCRIPTION)],
    project: str,
    identity: Caller,
    session: Annotated[Session, audited("policy-unexempt")],
    origin: RequestOrigin,
    upstreams: Upstreams,
) -> Response:
    require_admin(session, identity)
    cooldown_exemptions.unexempt(
        session, identity, upstream, project, upstreams=upstreams, origin=origin
    )
    return Response(status_code=204)
