"""`packyard policy list|allow|deny|remove|cooldown|exempt|unexempt`: curation of
upstreams at runtime.

The rules are stored in the database on top of the configuration file
(`publish/policies.py`), each change with its audit event and a serial bump,
so a running `packyard serve` on the same state, and every replica sharing
its database, applies it on the next request. The upstreams are those of the
configuration: pass the same `--config` as the server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.orm import Session

from packyard.cli import reports_errors, state_options
from packyard.cli.governance import open_state, operator
from packyard.cli.store import remembered_store
from packyard.publish import cooldown_exemptions, policies
from packyard.settings import UpstreamSettings

T = TypeVar("T")


def _change(
    config_file: Path | None,
    data_dir: Path | None,
    change: Callable[[Session, tuple[UpstreamSettings, ...]], T],
) -> T:
    """Run `change` with the configured upstreams, in one committed transaction."""
    with open_state(config_file, data_dir) as (settings, sessions), sessions.begin() as session:
        return change(session, settings.upstreams)


def _days(cooldown: policies.Cooldown) -> str:
    text = f"{cooldown.days:g} day" + ("" if cooldown.days == 1 else "s")
    if cooldown.origin == "config":
        return f"{text} (config)"
    return f"{text} (set by {cooldown.by}; config: {cooldown.configured_days:g})"


@click.group()
def policy() -> None:
    """Allow, deny and cool-down rules of the upstreams, changed at runtime.

    UPSTREAM is an upstream's configured name, or its URL if it has none; pass
    the server's --config so that its upstreams are known.
    """


@policy.command(name="list")
@state_options
@reports_errors
def list_policies(config_file: Path | None, data_dir: Path | None) -> None:
    """Print each upstream's cool-down and rules, marked config or database."""
    with open_state(config_file, data_dir) as (settings, sessions), sessions() as session:
        found = policies.list_rules(session, settings.upstreams)
    if not found:
        click.echo(f"No upstreams and no rules in {remembered_store()}.", err=True)
    for upstream in found:
        note = "" if upstream.configured else " (not configured: its rules apply to nothing)"
        click.echo(f"{upstream.upstream}{note}")
        click.echo(f"  cooldown\t{_days(upstream.cooldown)}")
        for rule in upstream.rules:
            by = f"\t{rule.by}" if rule.by else ""
            click.echo(f"  {rule.kind}\t{rule.glob}\t{rule.origin}{by}")
        for exemption in upstream.exemptions:
            click.echo(f"  exempt\t{exemption.project}\t{exemption.by}\t{exemption.reason}")


def _add_rule(
    config_file: Path | None, data_dir: Path | None, upstream: str, kind: str, glob: str
) -> None:
    def change(session: Session, upstreams: tuple[UpstreamSettings, ...]) -> str:
        rule, created = policies.add_rule(
            session, operator(), upstream, kind, glob, upstreams=upstreams
        )
        state = "added" if created else "already present"
        return f"{rule.kind} {rule.glob} on {rule.upstream}: {state}"

    click.echo(_change(config_file, data_dir, change))


@policy.command(name="allow")
@state_options
@click.argument("upstream")
@click.argument("glob")
@reports_errors
def allow(config_file: Path | None, data_dir: Path | None, upstream: str, glob: str) -> None:
    """Add the name glob GLOB (say 'acme-*') to the allow-list of UPSTREAM.

    Once an upstream has an allow-list, only the names on it are taken from it.
    """
    _add_rule(config_file, data_dir, upstream, "allow", glob)


@policy.command(name="deny")
@state_options
@click.argument("upstream")
@click.argument("glob")
@reports_errors
def deny(config_file: Path | None, data_dir: Path | None, upstream: str, glob: str) -> None:
    """Add the name glob GLOB (say 'evil-*') to the deny-list of UPSTREAM.

    Matching names are no longer taken from UPSTREAM (the next upstream may offer them).
    """
    _add_rule(config_file, data_dir, upstream, "deny", glob)


@policy.command(name="remove")
@state_options
@click.argument("upstream")
@click.argument("kind", type=click.Choice(policies.RULE_KINDS))
@click.argument("glob")
@reports_errors
def remove(
    config_file: Path | None, data_dir: Path | None, upstream: str, kind: str, glob: str
) -> None:
    """Remove the stored KIND (allow or deny) rule GLOB of UPSTREAM.

    Rules of the configuration file are changed there.
    """

    def change(session: Session, upstreams: tuple[UpstreamSettings, ...]) -> str:
        rule = policies.remove_rule(session, operator(), upstream, kind, glob, upstreams=upstreams)
        return f"removed {rule.kind} {rule.glob} from {rule.upstream}"

    click.echo(_change(config_file, data_dir, change))


@policy.command(name="cooldown")
@state_options
@click.argument("upstream")
@click.argument("days", metavar="DAYS|default")
@reports_errors
def cooldown(config_file: Path | None, data_dir: Path | None, upstream: str, days: str) -> None:
    """Hide files of UPSTREAM younger than DAYS (0: none), or go back to the
    configured cool-down with 'default'."""
    value = _parse_days(days)

    def change(session: Session, upstreams: tuple[UpstreamSettings, ...]) -> str:
        result = policies.set_cooldown(session, operator(), upstream, value, upstreams=upstreams)
        return f"cool-down of {result.upstream}: {_days(result)}"

    click.echo(_change(config_file, data_dir, change))


@policy.command(name="exempt")
@state_options
@click.argument("upstream")
@click.argument("project")
@click.option("--reason", required=True, help="Why it may skip the cool-down (kept and audited).")
@reports_errors
def exempt(
    config_file: Path | None, data_dir: Path | None, upstream: str, project: str, reason: str
) -> None:
    """Serve PROJECT of UPSTREAM without waiting for the cool-down (an urgent
    fix, say). The allow- and deny-lists still apply."""

    def change(session: Session, upstreams: tuple[UpstreamSettings, ...]) -> str:
        found, created = cooldown_exemptions.exempt(
            session, operator(), upstream, project, reason, upstreams=upstreams
        )
        state = "exempted" if created else "already exempted; reason replaced"
        return f"{found.project} of {found.upstream} from the cool-down: {state}"

    click.echo(_change(config_file, data_dir, change))


@policy.command(name="unexempt")
@state_options
@click.argument("upstream")
@click.argument("project")
@reports_errors
def unexempt(config_file: Path | None, data_dir: Path | None, upstream: str, project: str) -> None:
    """Hold PROJECT of UPSTREAM back by the cool-down again."""

    def change(session: Session, upstreams: tuple[UpstreamSettings, ...]) -> str:
        found = cooldown_exemptions.unexempt(
            session, operator(), upstream, project, upstreams=upstreams
        )
        return f"{found.project} of {found.upstream} is held back by the cool-down again"

    click.echo(_change(config_file, data_dir, change))


def _parse_days(days: str) -> float | None:
    """None for 'default', else the number of days (checked by the service).

    Raises:
        click.BadParameter: neither 'default' nor a number.
    """
    if days.strip().lower() == "default":
        return None
    try:
        return float(days)
    except ValueError:
        raise click.BadParameter(f"{days!r} is neither a number of days nor 'default'") from None
