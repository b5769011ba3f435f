"""Exempting one project of an upstream from that upstream's cool-down.

A cool-down holds back every new release of an upstream for days, so that a
hijacked release is found and pulled before anyone here installs it. When the
new release is the fix itself (a security release everyone must take today),
an admin exempts that project, with a reason: its files are then served as
soon as the upstream has them. The allow- and deny-lists still apply; only
the cool-down is lifted, for that project of that upstream alone.

Each change works in the caller's transaction: the `cooldown_exemptions` row,
an audit event (`policy-exempt`, `policy-unexempt`) and a serial bump commit
together, so every replica sharing the database applies it on its next
request (`repository/policy_rules.py` reads the rows, `PolicyRepository`
skips the cool-down for them). Only administrators may change them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.policies import CooldownExemption
from packyard.db.serial import bump_serial
from packyard.errors import NotFound
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.name_guard import check_name
from packyard.publish.policies import Exemption, exemption_of, resolve_upstream
from packyard.publish.reasons import required_reason
from packyard.publish.yanks import require_admin
from packyard.settings import UpstreamSettings


def exempt(
    session: Session,
    identity: Identity,
    upstream: str,
    project: str,
    reason: str,
    *,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> tuple[Exemption, bool]:
    """Serve `project` of `upstream` without waiting for its cool-down.

    Returns the exemption and whether it is new; exempting it again replaces
    the reason (and who gave it).

    Raises:
        InvalidRequest: an unknown upstream (the message names the configured
            ones), an invalid project name, or no reason.
        PermissionDenied: `identity` is not an admin.
    """
    name = check_name(project.strip())
    require_admin(session, identity, "exempt from the cool-down", name)
    label = resolve_upstream(upstreams, upstream).label
    text = required_reason(
        reason, "Say why the project may skip the cool-down: a reason is required."
    )
    row = session.get(CooldownExemption, (label, name))
    created = row is None
    if row is None:
        row = CooldownExemption(upstream=label, project=name)
        session.add(row)
    row.reason, row.added_by, row.created_at = text, identity.actor, datetime.now(UTC)
    if created:
        bump_serial(session)  # a new reason alone changes nothing served
    record(
        session,
        actor=identity.actor,
        action="policy-exempt",
        origin=origin,
        project=name,
        upstream=label,
        reason=text,
        new=created,
    )
    return exemption_of(row), created


def unexempt(
    session: Session,
    identity: Identity,
    upstream: str,
    project: str,
    *,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> Exemption:
    """Hold `project` of `upstream` back by the cool-down again. An exemption of
    an upstream that is no longer configured can be removed too, by its stored label.

    Raises:
        InvalidRequest: an invalid project name; an unknown upstream with no
            such exemption.
        NotFound: the upstream has no exemption for the project.
        PermissionDenied: `identity` is not an admin.
    """
    name = check_name(project.strip())
    require_admin(session, identity, "exempt from the cool-down", name)
    row = session.get(CooldownExemption, (upstream.strip(), name))
    if row is None:
        label = resolve_upstream(upstreams, upstream).label
        row = session.get(CooldownExemption, (label, name))
        if row is None:
            raise NotFound(f"Project {name!r} of upstream {label} has no cool-down exemption.")
    exemption = exemption_of(row)
    session.delete(row)
    bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="policy-unexempt",
        origin=origin,
        project=name,
        upstream=exemption.upstream,
    )
    return exemption
