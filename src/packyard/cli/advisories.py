"""`packyard advisories import PATH`: known vulnerabilities, carried into a closed network.

PATH is the PyPA advisory database's `vulns/` tree (OSV YAML), osv.dev's
`PyPI/all.zip` (OSV JSON) or a single record. The import is one transaction
(`advisories/importing.py`): a running server and every replica sharing its
database apply it at their next request.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from packyard.advisories.importing import ImportReport, import_entries
from packyard.advisories.sources import Entry, SourceUnreadable, count_records, read_source
from packyard.cli import reports_errors, state_options
from packyard.cli.advisory_rules import RULE_COMMANDS
from packyard.cli.governance import open_state, operator

SHOWN = 20  # ids listed per kind of change; the rest are counted
Shown = Callable[[Iterable[Entry]], Iterable[Entry]]


@click.group()
def advisories() -> None:
    """Known vulnerabilities (OSV records): import them and decide what they do."""


@advisories.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@state_options
@reports_errors
def import_command(path: Path, config_file: Path | None, data_dir: Path | None) -> None:
    """Import OSV records from PATH: a directory of .yaml/.json records, a zip
    of .json records (osv.dev's all.zip), or one record file.

    Records already stored are replaced only by a newer `modified`; a file
    that cannot be read is reported and skipped, and the rest is imported.
    """
    try:
        total = count_records(path)
        with open_state(config_file, data_dir) as (_, sessions), _progress(total) as shown:
            report = import_entries(
                sessions, shown(read_source(path)), actor=operator().actor, source=str(path)
            )
    except SourceUnreadable as exc:
        raise click.ClickException(str(exc)) from None
    _print(report)


@contextmanager
def _progress(total: int) -> Iterator[Shown]:
    """A progress bar on a terminal; nothing when the output is a file or pipe."""
    if not sys.stderr.isatty():
        yield lambda entries: entries
        return
    with click.progressbar(length=total, label="Reading records", file=sys.stderr) as bar:

        def shown(entries: Iterable[Entry]) -> Iterator[Entry]:
            for entry in entries:
                bar.update(1)
                yield entry

        yield shown


def _print(report: ImportReport) -> None:
    for origin, problem in report.skipped:
        click.echo(f"skipped {origin}: {problem}", err=True)
    for origin, note in report.notes:
        click.echo(f"note {origin}: {note}", err=True)
    for kind, ids in (
        ("added", report.added),
        ("changed", report.changed),
        ("withdrawn", report.withdrawn),
    ):
        more = f", and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
        listed = ", ".join(ids[:SHOWN]) + more
        click.echo(f"{kind}: {len(ids)}" + (f" ({listed})" if ids else ""))
    click.echo(f"unchanged: {report.unchanged}")
    click.echo(f"skipped: {len(report.skipped)}")


# Enforcement at runtime: `policy`, `accept`, `revoke`, `exceptions` (cli/advisory_rules.py).
for _command in RULE_COMMANDS:
    advisories.add_command(_command)
