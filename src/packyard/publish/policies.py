"""Curation of upstreams at runtime: allow and deny globs and cool-down overrides
(and, listed with them, the cool-down exemptions of `publish/cooldown_exemptions.py`).

The configuration file sets each upstream's `allow`, `deny` and
`cooldown_days`; admins add to them here, without a restart. The effective
policy of an upstream (`repository/policy.py`) is:

- allow = configured allow ∪ stored allow (an empty result allows every name);
- deny = configured deny ∪ stored deny (a deny always wins);
- cool-down = the stored override if one is set, else the configured one.

Upstreams are named by their label (`UpstreamSettings.label`: the configured
`name`, else the URL without credentials); the URL itself is accepted too.
Globs are stored normalised like names (`Acme_*` is `acme-*`).

Each change works in the caller's transaction: the row, an audit event
(`publish.audit.record`) and a serial bump (`db.serial`) commit together, so
every replica sharing the database applies it on its next request (DESIGN §3).
Only administrators may change or list the rules; a refused change raises
before anything is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.policies import CooldownExemption, UpstreamCooldown, UpstreamRule
from packyard.db.serial import bump_serial
from packyard.errors import InvalidRequest, NotFound
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.yanks import require_admin
from packyard.repository.policy import normal_glob
from packyard.settings import UpstreamSettings

RuleKind = Literal["allow", "deny"]
RuleOrigin = Literal["config", "database"]
RULE_KINDS: tuple[RuleKind, ...] = ("allow", "deny")

MAX_GLOB_LENGTH = 255
MAX_COOLDOWN_DAYS = 3650.0
# A normalised glob: name characters, `*`, `?`, and `[...]` / `[!...]` classes of
# name characters (fnmatch's syntax). Anything else could never match a name.
_GLOB = re.compile(r"(?:[a-z0-9*?-]|\[!?[a-z0-9-]+\])+")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One allow or deny glob of an upstream; `by` and `at` are None for configured ones."""

    upstream: str
    kind: RuleKind
    glob: str
    origin: RuleOrigin
    by: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cooldown:
    """An upstream's effective cool-down in days, and where it comes from.

    `configured_days` is the configuration's value, shown beside an override.
    """

    upstream: str
    days: float
    origin: RuleOrigin
    configured_days: float
    by: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Exemption:
    """A project of an upstream that the upstream's cool-down does not hold back
    (`publish/cooldown_exemptions.py`)."""

    upstream: str
    project: str
    reason: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """Everything that curates one upstream.

    `configured` is False for an upstream that only stored rules name (it was
    renamed or removed from the configuration): its rules apply to nothing.
    """

    upstream: str
    configured: bool
    rules: tuple[PolicyRule, ...]
    cooldown: Cooldown
    exemptions: tuple[Exemption, ...] = ()


def add_rule(
    session: Session,
    identity: Identity,
    upstream: str,
    kind: str,
    glob: str,
    *,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> tuple[PolicyRule, bool]:
    """Add the `kind` ("allow" or "deny") rule `glob` to `upstream`.

    Returns the rule and whether it is new: adding a stored rule again
    changes nothing (no serial bump) but is still audited.

    Raises:
        InvalidRequest: `upstream` is not one of `upstreams` (the message names
            them), `kind` is neither allow nor deny, or `glob` is not a valid glob.
        PermissionDenied: `identity` is not an admin.
    """
    require_admin(session, identity, "change the curation of upstream", upstream)
    label = resolve_upstream(upstreams, upstream).label
    kind = check_kind(kind)
    glob = check_glob(glob)
    row = _stored_rule(session, label, kind, glob)
    created = row is None
    if row is None:
        row = UpstreamRule(
            upstream=label, kind=kind, glob=glob, added_by=identity.actor, created_at=_now()
        )
        session.add(row)
        bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action=f"policy-{kind}",
        origin=origin,
        upstream=label,
        glob=glob,
        new=created,
    )
    return _rule_of(row), created


def remove_rule(
    session: Session,
    identity: Identity,
    upstream: str,
    kind: str,
    glob: str,
    *,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> PolicyRule:
    """Remove a stored rule. A rule of an upstream that is no longer configured
    can be removed too, by its stored label.

    Raises:
        InvalidRequest: an invalid kind or glob; an unknown upstream with no
            such stored rule; or the rule comes from the configuration file.
        NotFound: the upstream has no such stored rule.
        PermissionDenied: `identity` is not an admin.
    """
    require_admin(session, identity, "change the curation of upstream", upstream)
    kind = check_kind(kind)
    glob = check_glob(glob)
    row = _stored_rule(session, upstream, kind, glob)
    if row is None:
        settings = resolve_upstream(upstreams, upstream)
        row = _stored_rule(session, settings.label, kind, glob)
        configured = settings.allow if kind == "allow" else settings.deny
        if row is None and glob in {normal_glob(entry) for entry in configured}:
            raise InvalidRequest(
                f"The {kind} rule {glob!r} of upstream {settings.label} comes from the "
                "configuration file: remove it there."
            )
        if row is None:
            raise NotFound(f"Upstream {settings.label} has no stored {kind} rule {glob!r}.")
    rule = _rule_of(row)
    session.delete(row)
    bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="policy-remove",
        origin=origin,
        upstream=rule.upstream,
        kind=kind,
        glob=glob,
    )
    return rule


def set_cooldown(
    session: Session,
    identity: Identity,
    upstream: str,
    days: float | None,
    *,
    upstreams: Sequence[UpstreamSettings],
    origin: Origin = COMMAND_LINE,
) -> Cooldown:
    """Override the cool-down of `upstream` with `days`, or go back to the
    configured one with None. Returns the effective cool-down.

    Raises:
        InvalidRequest: an unknown upstream (the message names the configured
            ones), or `days` is not between 0 and `MAX_COOLDOWN_DAYS`.
        PermissionDenied: `identity` is not an admin.
    """
    require_admin(session, identity, "change the curation of upstream", upstream)
    settings = resolve_upstream(upstreams, upstream)
    if days is not None and not (math.isfinite(days) and 0 <= days <= MAX_COOLDOWN_DAYS):
        raise InvalidRequest(
            f"A cool-down is 0 to {MAX_COOLDOWN_DAYS:g} days, not {days!r} "
            "(or 'default' for the configured one)."
        )
    row = session.get(UpstreamCooldown, settings.label)
    if row is None and days is not None:
        row = UpstreamCooldown(upstream=settings.label)
        session.add(row)
    if row is not None:
        changed = row.days != days
        # Kept when reset to None: the row then says who went back to the configuration.
        row.days, row.set_by, row.set_at = days, identity.actor, _now()
        if changed:
            bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="policy-cooldown",
        origin=origin,
        upstream=settings.label,
        days=days,
    )
    return _cooldown_of(settings.label, settings.cooldown_days, row)


def list_rules(session: Session, upstreams: Sequence[UpstreamSettings]) -> list[UpstreamPolicy]:
    """Every upstream's curation: configured ones in priority order, each with its
    configured rules first, then the stored ones; then upstreams that only
    stored rules name. Reading is not authorised here: callers check who asks.
    """
    rules = session.scalars(select(UpstreamRule).order_by(UpstreamRule.id)).all()
    cooldowns = {row.upstream: row for row in session.scalars(select(UpstreamCooldown))}
    exemptions = [
        exemption_of(row)
        for row in session.scalars(select(CooldownExemption).order_by(CooldownExemption.project))
    ]

    def stored(label: str) -> tuple[tuple[PolicyRule, ...], tuple[Exemption, ...]]:
        return (
            tuple(_rule_of(row) for row in rules if row.upstream == label),
            tuple(exemption for exemption in exemptions if exemption.upstream == label),
        )

    policies: list[UpstreamPolicy] = []
    for settings in upstreams:
        label = settings.label
        configured = [
            *(PolicyRule(label, "allow", normal_glob(glob), "config") for glob in settings.allow),
            *(PolicyRule(label, "deny", normal_glob(glob), "config") for glob in settings.deny),
        ]
        added, exempt = stored(label)
        cooldown = _cooldown_of(label, settings.cooldown_days, cooldowns.get(label))
        policies.append(UpstreamPolicy(label, True, (*configured, *added), cooldown, exempt))
    known = {settings.label for settings in upstreams}
    orphans = dict.fromkeys(row.upstream for row in rules if row.upstream not in known)
    orphans.update(dict.fromkeys(label for label in cooldowns if label not in known))
    orphans.update(dict.fromkeys(e.upstream for e in exemptions if e.upstream not in known))
    for label in orphans:
        added, exempt = stored(label)
        cooldown = _cooldown_of(label, 0.0, cooldowns.get(label))
        policies.append(UpstreamPolicy(label, False, added, cooldown, exempt))
    return policies


def resolve_upstream(upstreams: Sequence[UpstreamSettings], upstream: str) -> UpstreamSettings:
    """The configured upstream labelled `upstream`, or whose URL it is.

    Raises:
        InvalidRequest: no configured upstream has that label or URL; the
            message names the configured ones.
    """
    wanted = upstream.strip()
    url = wanted if wanted.endswith("/") else wanted + "/"
    for settings in upstreams:
        if wanted == settings.label or url == settings.url:
            return settings
    if not upstreams:
        raise InvalidRequest(f"Unknown upstream {wanted!r}: no upstream is configured.")
    names = ", ".join(repr(settings.label) for settings in upstreams)
    raise InvalidRequest(f"Unknown upstream {wanted!r}: the configured upstreams are {names}.")


def check_kind(kind: str) -> RuleKind:
    """`kind` as a rule kind.

    Raises:
        InvalidRequest: neither "allow" nor "deny".
    """
    for known in RULE_KINDS:
        if kind == known:
            return known
    raise InvalidRequest(f"A rule is 'allow' or 'deny', not {kind!r}.")


def check_glob(glob: str) -> str:
    """`glob` normalised like a project name (`Acme_*` gives `acme-*`).

    Raises:
        InvalidRequest: empty, longer than `MAX_GLOB_LENGTH`, or with
            characters a project name cannot have other than fnmatch's `*`,
            `?` and `[...]` (an unclosed `[` included).
    """
    normal = normal_glob(glob)
    if len(normal) > MAX_GLOB_LENGTH or not _GLOB.fullmatch(normal):
        raise InvalidRequest(
            f"{glob!r} is not a valid name glob: use letters, digits, '.', '_', '-', "
            "and the wildcards '*', '?' and '[...]', e.g. 'acme-*'."
        )
    return normal


def _stored_rule(session: Session, upstream: str, kind: str, glob: str) -> UpstreamRule | None:
    return session.scalar(
        select(UpstreamRule).where(
            UpstreamRule.upstream == upstream, UpstreamRule.kind == kind, UpstreamRule.glob == glob
        )
    )


def _rule_of(row: UpstreamRule) -> PolicyRule:
    kind = check_kind(row.kind)
    return PolicyRule(row.upstream, kind, row.glob, "database", row.added_by, row.created_at)


def exemption_of(row: CooldownExemption) -> Exemption:
    """The `Exemption` a stored row holds."""
    return Exemption(row.upstream, row.project, row.reason, row.added_by, row.created_at)


def _cooldown_of(label: str, configured: float, row: UpstreamCooldown | None) -> Cooldown:
    if row is None or row.days is None:
        return Cooldown(label, configured, "config", configured)
    return Cooldown(label, row.days, "database", configured, row.set_by, row.set_at)


def _now() -> datetime:
    return datetime.now(UTC)
