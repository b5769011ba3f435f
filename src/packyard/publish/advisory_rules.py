"""Advisory policies and accepted risks, changed at runtime by administrators.

The configuration sets what known vulnerabilities do to each source's files
(`[advisories] policy`, an upstream's `advisories_policy`, `local_policy`);
an admin overrides it per source here, without a restart, and goes back to
the configured one by clearing the override. A source is a configured
upstream, named by its label (or its URL), or `local` for in-house packages.

An accepted risk says that one advisory is not enforced for one project
(`*`: for every project); a reason is required. It is still shown, marked
accepted. A malicious-package record (`MAL-`) cannot be accepted: such a
package is refused whatever the policy (docs/decisions.md).

Each change works in the caller's transaction: the row, an audit event
(`publish.audit.record`) and a serial bump (`db.serial`) commit together, so
every replica applies it on its next request (DESIGN §3). Only
administrators may change them; a refused change raises before anything is
written. Reading is not authorised here: callers check who asks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.advisories.records import MALICIOUS_PREFIX
from packyard.auth.identity import Identity
from packyard.db.advisories import (
    EVERY_PROJECT,
    POLICIES,
    Advisory,
    AdvisoryException,
    AdvisoryPackage,
    AdvisoryPolicy,
)
from packyard.db.serial import bump_serial
from packyard.errors import InvalidRequest, NotFound
from packyard.model import SOURCE_LOCAL
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.name_guard import check_name
from packyard.publish.policies import resolve_upstream
from packyard.publish.reasons import required_reason
from packyard.publish.yanks import require_admin
from packyard.repository.advisories import ConfiguredPolicies
from packyard.settings import AdvisorySettings, UpstreamSettings

PolicyOrigin = Literal["config", "database"]
MAX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """The advisory policy in force for one source, and where it comes from.

    `configured` is the configuration's value, shown beside an override;
    `known` is False for a source only a stored override names (an upstream
    renamed or removed from the configuration): the override applies to nothing.
    """

    source: str
    policy: str
    origin: PolicyOrigin
    configured: str
    known: bool = True
    by: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AcceptedRisk:
    """An advisory not enforced for `project` (`*`: every project), and why."""

    advisory_id: str
    project: str
    reason: str
    by: str
    at: datetime


def list_policies(
    session: Session, settings: AdvisorySettings, upstreams: Sequence[UpstreamSettings]
) -> list[SourcePolicy]:
    """Every source's policy: `local`, then the upstreams in priority order, then
    the sources that only a stored override names."""
    configured = ConfiguredPolicies.of(settings, tuple(upstreams))
    stored = {row.source: row for row in session.scalars(select(AdvisoryPolicy))}
    sources = [SOURCE_LOCAL, *(upstream.label for upstream in upstreams)]
    found = [_policy_of(source, configured, stored.get(source)) for source in sources]
    for source, row in stored.items():
        if source not in sources:
            found.append(_policy_of(source, configured, row, known=False))
    return found


def set_policy(
    session: Session,
    identity: Identity,
    source: str,
    policy: str | None,
    *,
    settings: AdvisorySettings,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> SourcePolicy:
    """Override the policy of `source` with `policy`, or go back to the configured
    one with None. Returns the policy now in force. Clearing an override of a
    source no longer configured works by its stored name.

    Raises:
        InvalidRequest: `policy` is not one of warn, yank, hide, deny; or
            `source` is neither `local` nor a configured upstream (the
            message names them).
        PermissionDenied: `identity` is not an admin.
    """
    require_admin(session, identity, "change the advisory policy of", source)
    if policy is not None and policy not in POLICIES:
        raise InvalidRequest(f"An advisory policy is one of {', '.join(POLICIES)}, not {policy!r}.")
    row = session.get(AdvisoryPolicy, source.strip())
    if row is None or policy is not None:
        label = _source_label(source, upstreams)
        row = session.get(AdvisoryPolicy, label)
    else:
        label = row.source
    previous = row.policy if row is not None else None
    if policy is None and row is not None:
        session.delete(row)
    elif policy is not None and row is None:
        row = AdvisoryPolicy(source=label, policy=policy, set_by=identity.actor, set_at=_now())
        session.add(row)
    elif policy is not None and row is not None:
        row.policy, row.set_by, row.set_at = policy, identity.actor, _now()
    if previous != policy:
        bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="advisory-policy",
        origin=origin,
        source=label,
        policy=policy,
        previous=previous,
    )
    configured = ConfiguredPolicies.of(settings, tuple(upstreams))
    known = label == SOURCE_LOCAL or label in configured.by_upstream
    return _policy_of(label, configured, row if policy is not None else None, known=known)


def list_exceptions(session: Session) -> list[AcceptedRisk]:
    """Every accepted risk, by advisory id then project."""
    rows = session.scalars(
        select(AdvisoryException).order_by(
            AdvisoryException.advisory_id, AdvisoryException.project_name
        )
    )
    return [_risk_of(row) for row in rows]


def accept(
    session: Session,
    identity: Identity,
    advisory_id: str,
    project: str | None,
    reason: str,
    *,
    origin: Origin = COMMAND_LINE,
) -> tuple[AcceptedRisk, bool]:
    """Accept the risk of `advisory_id` for `project` (None or `*`: every project).

    Returns the accepted risk and whether it is new; accepting it again
    replaces its reason (and who accepted it).

    Raises:
        InvalidRequest: no reason, or one longer than `MAX_REASON_LENGTH`; an
            invalid project name; the advisory does not name the project; the
            advisory is a malicious-package record; the id is an alias (the
            message names the record to accept instead).
        NotFound: no advisory of that id is imported.
        PermissionDenied: `identity` is not an admin.
    """
    target = _project(project)
    require_admin(session, identity, "accept an advisory's risk for", target)
    text = required_reason(reason, "Say why the risk is accepted: a reason is required.")
    advisory = _advisory(session, advisory_id)
    if advisory.id.startswith(MALICIOUS_PREFIX):
        raise InvalidRequest(
            f"{advisory.id} is a malicious-package record: such a package is always "
            "refused, and its risk cannot be accepted."
        )
    _check_names(session, advisory.id, target)
    row = _exception(session, advisory.id, target)
    created = row is None
    if row is None:
        row = AdvisoryException(advisory_id=advisory.id, project_name=target)
        session.add(row)
    changed = created or row.reason != text
    row.reason, row.accepted_by, row.created_at = text, identity.actor, _now()
    if changed:
        bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="advisory-accept",
        origin=origin,
        project=None if target == EVERY_PROJECT else target,
        advisory=advisory.id,
        scope=target,
        reason=text,
        new=created,
    )
    return _risk_of(row), created


def revoke(
    session: Session,
    identity: Identity,
    advisory_id: str,
    project: str | None,
    *,
    origin: Origin = COMMAND_LINE,
) -> AcceptedRisk:
    """Enforce `advisory_id` for `project` (None or `*`: the every-project
    exception) again.

    Raises:
        InvalidRequest: an invalid project name.
        NotFound: no such accepted risk.
        PermissionDenied: `identity` is not an admin.
    """
    target = _project(project)
    require_admin(session, identity, "revoke an accepted advisory risk of", target)
    wanted = advisory_id.strip()
    row = _exception(session, wanted, target)
    if row is None:
        whom = "every project" if target == EVERY_PROJECT else f"project {target!r}"
        raise NotFound(f"No accepted risk of {wanted} for {whom}.")
    risk = _risk_of(row)
    session.delete(row)
    bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="advisory-revoke",
        origin=origin,
        project=None if target == EVERY_PROJECT else target,
        advisory=risk.advisory_id,
        scope=target,
    )
    return risk


def _source_label(source: str, upstreams: Sequence[UpstreamSettings]) -> str:
    """`local`, or the label of the configured upstream `source` names.

    Raises:
        InvalidRequest: neither; the message names the sources there are.
    """
    wanted = source.strip()
    if wanted == SOURCE_LOCAL:
        return SOURCE_LOCAL
    try:
        return resolve_upstream(upstreams, wanted).label
    except InvalidRequest:
        names = ", ".join(repr(name) for name in (SOURCE_LOCAL, *(u.label for u in upstreams)))
        raise InvalidRequest(
            f"Unknown source {wanted!r}: a source is {names} (in-house packages are 'local')."
        ) from None


def _project(project: str | None) -> str:
    if project is None or project.strip() == EVERY_PROJECT:
        return EVERY_PROJECT
    return check_name(project.strip())


def _advisory(session: Session, advisory_id: str) -> Advisory:
    """The stored advisory `advisory_id`.

    Raises:
        InvalidRequest: the id is an alias of stored records (the message names them).
        NotFound: nothing of that id is stored.
    """
    wanted = advisory_id.strip()
    found = session.get(Advisory, wanted) if 0 < len(wanted) <= MAX_ID_LENGTH else None
    if found is not None:
        return found
    if 0 < len(wanted) <= MAX_ID_LENGTH:
        candidates = session.scalars(
            select(Advisory).where(Advisory.aliases.contains(json.dumps(wanted)))
        ).all()
        holders = [row.id for row in candidates if wanted in json.loads(row.aliases)]
        if holders:
            raise InvalidRequest(
                f"{wanted} is an alias of {', '.join(holders)}: accept the record's own id."
            )
    raise NotFound(f"No advisory {wanted!r} is imported (see `packyard advisories import`).")


def _check_names(session: Session, advisory_id: str, project: str) -> None:
    """Refuse an exception for a project the advisory does not name: it would do nothing."""
    if project == EVERY_PROJECT:
        return
    names = session.scalars(
        select(AdvisoryPackage.name).where(AdvisoryPackage.advisory_id == advisory_id)
    ).all()
    if project not in names:
        raise InvalidRequest(
            f"{advisory_id} does not affect project {project!r}: it names {', '.join(names)}."
        )


def _exception(session: Session, advisory_id: str, project: str) -> AdvisoryException | None:
    return session.scalar(
        select(AdvisoryException).where(
            AdvisoryException.advisory_id == advisory_id,
            AdvisoryException.project_name == project,
        )
    )


def _policy_of(
    source: str,
    configured: ConfiguredPolicies,
    row: AdvisoryPolicy | None,
    *,
    known: bool = True,
) -> SourcePolicy:
    default = configured.of_source(source)
    if row is None:
        return SourcePolicy(source, default, "config", default, known)
    return SourcePolicy(source, row.policy, "database", default, known, row.set_by, row.set_at)


def _risk_of(row: AdvisoryException) -> AcceptedRisk:
    return AcceptedRisk(
        row.advisory_id, row.project_name, row.reason, row.accepted_by, row.created_at
    )


def _now() -> datetime:
    return datetime.now(UTC)
