"""`packyard advisories policy|accept|revoke|exceptions`: enforcement changed at runtime.

Commands of the `advisories` group (`cli/advisories.py`). Each change is
stored in the database with its audit event and a serial bump
(`publish/advisory_rules.py`), so a running `packyard serve` on the same
state, and every replica sharing its database, applies it on its next
request. The sources are those of the configuration: pass the same
`--config` as the server.
"""

from __future__ import annotations

from pathlib import Path

import click

from packyard.cli import reports_errors, state_options
from packyard.cli.governance import open_state, operator
from packyard.db.advisories import EVERY_PROJECT, POLICIES
from packyard.publish import advisory_rules
from packyard.publish.advisory_rules import AcceptedRisk, SourcePolicy


def _line(found: SourcePolicy) -> str:
    """`pypi<TAB>deny<TAB>database (set by cli:ann; config: warn)`."""
    if found.origin == "config":
        where = "config"
    else:
        where = f"database (set by {found.by}; config: {found.configured})"
    note = "" if found.known else " (not configured: applies to nothing)"
    return f"{found.source}\t{found.policy}\t{where}{note}"


def _whom(project: str) -> str:
    return "every project" if project == EVERY_PROJECT else project


@click.command(name="policy")
@state_options
@click.argument("source", required=False)
@click.argument("value", metavar="[warn|yank|hide|deny]", required=False)
@click.option("--clear", is_flag=True, help="Go back to the configured policy of SOURCE.")
@reports_errors
def policy_command(
    config_file: Path | None,
    data_dir: Path | None,
    source: str | None,
    value: str | None,
    clear: bool,
) -> None:
    """Show or set what known vulnerabilities do to a source's files.

    Without arguments, print each source's policy, marked config or database.
    SOURCE is `local` (in-house packages) or an upstream's configured name (its
    URL if it has none). VALUE: warn (listed only), yank (served yanked), hide
    (left out of pages), deny (left out, and downloads refused). Files of
    malicious-package records (MAL-) are refused whatever the policy.
    """
    if value is not None and value not in POLICIES:
        raise click.BadParameter(
            f"{value!r} is not one of {', '.join(POLICIES)}", param_hint="VALUE"
        )
    if clear and (source is None or value is not None):
        raise click.UsageError("--clear takes a SOURCE and no policy.")
    with open_state(config_file, data_dir) as (settings, sessions):
        if value is None and not clear:
            with sessions() as session:
                found = advisory_rules.list_policies(
                    session, settings.advisories, settings.upstreams
                )
            shown = [item for item in found if source is None or item.source == source.strip()]
            if source is not None and not shown:
                raise click.ClickException(f"unknown source {source!r}")
            for item in shown:
                click.echo(_line(item))
            return
        assert source is not None
        with sessions.begin() as session:
            result = advisory_rules.set_policy(
                session,
                operator(),
                source,
                None if clear else value,
                settings=settings.advisories,
                upstreams=settings.upstreams,
            )
        click.echo(_line(result))


@click.command(name="accept")
@state_options
@click.argument("advisory_id", metavar="ID")
@click.option("--project", help="The project it is accepted for (default: every project).")
@click.option("--reason", required=True, help="Why the risk is accepted (kept in the audit trail).")
@reports_errors
def accept_command(
    config_file: Path | None,
    data_dir: Path | None,
    advisory_id: str,
    project: str | None,
    reason: str,
) -> None:
    """Accept the risk of advisory ID: it is no longer enforced (still shown).

    A malicious-package record (MAL-) cannot be accepted.
    """
    with open_state(config_file, data_dir) as (_, sessions), sessions.begin() as session:
        risk, created = advisory_rules.accept(session, operator(), advisory_id, project, reason)
    state = "accepted" if created else "already accepted, reason replaced"
    click.echo(f"{risk.advisory_id} for {_whom(risk.project)}: {state}")


@click.command(name="revoke")
@state_options
@click.argument("advisory_id", metavar="ID")
@click.option("--project", help="The project it was accepted for (default: every project).")
@reports_errors
def revoke_command(
    config_file: Path | None, data_dir: Path | None, advisory_id: str, project: str | None
) -> None:
    """Enforce advisory ID again where its risk was accepted."""
    with open_state(config_file, data_dir) as (_, sessions), sessions.begin() as session:
        risk = advisory_rules.revoke(session, operator(), advisory_id, project)
    click.echo(f"{risk.advisory_id} for {_whom(risk.project)}: enforced again")


@click.command(name="exceptions")
@state_options
@reports_errors
def exceptions_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Print every accepted risk: id, project, who accepted it, when, and why."""
    with open_state(config_file, data_dir) as (_, sessions), sessions() as session:
        risks = advisory_rules.list_exceptions(session)
    for risk in risks:
        click.echo(_risk_line(risk))


def _risk_line(risk: AcceptedRisk) -> str:
    at = risk.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{risk.advisory_id}\t{risk.project}\t{risk.by}\t{at}\t{risk.reason}"


RULE_COMMANDS = (policy_command, accept_command, revoke_command, exceptions_command)
"""The commands of this module, added to the `advisories` group by `cli/advisories.py`."""
