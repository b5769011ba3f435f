"""`packyard attestations list|require`: which uploads must carry a PEP 740 attestation.

The configuration's `[attestations] require` applies to every project; an
admin gives a project its own (`publish/attestation_rules.py`), audited,
applied to the next upload.
"""

from __future__ import annotations

from pathlib import Path

import click

from packyard.attestations.requirement import REQUIREMENTS
from packyard.cli import reports_errors, state_options
from packyard.cli.governance import open_state, operator
from packyard.publish import attestation_rules
from packyard.publish.attestation_rules import ProjectRequirement


def _line(found: ProjectRequirement) -> str:
    origin = "project" if found.own else "config"
    return f"{found.project}\t{found.requirement}\t{origin}"


@click.group()
def attestations() -> None:
    """PEP 740 attestations: which uploads must carry a verified one."""


@attestations.command(name="list")
@state_options
@reports_errors
def list_command(config_file: Path | None, data_dir: Path | None) -> None:
    """Print the configured requirement, then each project that has its own."""
    with open_state(config_file, data_dir) as (settings, sessions), sessions() as session:
        configured = settings.attestations.require
        found = attestation_rules.list_requirements(session, configured)
    click.echo(f"every project\t{configured}\tconfig")
    for item in found:
        click.echo(_line(item))


@attestations.command(name="require")
@state_options
@click.argument("project")
@click.argument("requirement", type=click.Choice([*REQUIREMENTS, "default"]))
@reports_errors
def require(
    config_file: Path | None, data_dir: Path | None, project: str, requirement: str
) -> None:
    """Which uploads of PROJECT must carry a verified attestation: none, ci (those
    made by CI jobs), all (so only CI jobs can upload), or default (the
    configured [attestations] require)."""
    with open_state(config_file, data_dir) as (settings, sessions), sessions.begin() as session:
        found = attestation_rules.set_requirement(
            session,
            operator(),
            project,
            None if requirement == "default" else requirement,
            configured=settings.attestations.require,
        )
    click.echo(_line(found))
