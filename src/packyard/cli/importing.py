"""`packyard import`: the importer run from the command line, with a progress bar.

The importer applies the upload's rules (`publish/importer.py`). A file that
would create a new project passes the same name guard as an upload, over the
same upstreams as the server's (from the settings, or `--upstream`),
uncurated as `compose.build_chain` hands them to the upload service: a name a
policy hides is still a public name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from click._termui_impl import ProgressBar

from packyard.cli import reports_errors, settings_from, state_options
from packyard.cli.governance import operator
from packyard.cli.store import open_store
from packyard.compose import cached_upstreams
from packyard.db.engine import session_factory_for
from packyard.publish.importer import (
    ImportReport,
    ImportResult,
    ImportRules,
    find_distributions,
    import_files,
)
from packyard.publish.name_guard import NameGuard
from packyard.settings import Settings
from packyard.storage.location import FILES, open_blob_storage


def import_with_progress(settings: Settings, directory: Path, rules: ImportRules) -> ImportReport:
    """Import every distribution under `directory` into the store of `settings`.

    Raises:
        click.ClickException: there is no store there.
        NotFound, InvalidRequest: `rules.owner` names no usable user or group.
    """
    engine = open_store(settings)
    try:
        paths = find_distributions(directory)
        storage = open_blob_storage(settings)
        sessions = session_factory_for(engine)
        # The bar goes to stderr so that stdout keeps only the summary.
        bar: ProgressBar[int] = click.progressbar(
            length=len(paths), label="importing", file=sys.stderr
        )
        with bar:

            def advance(_: ImportResult) -> None:
                bar.update(1)

            async def run() -> ImportReport:
                upstreams = cached_upstreams(settings, sessions, storage)
                try:
                    return await import_files(
                        paths,
                        sessions,
                        storage.store(FILES),
                        advance,
                        name_guard=NameGuard(sessions, upstreams),
                        rules=rules,
                    )
                finally:
                    for upstream in upstreams:
                        await upstream.aclose()

            return anyio.run(run)
    finally:
        engine.dispose()


@click.command(name="import")
@state_options
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Upstream index URL whose public names new projects may not take; repeat for "
    "several. 'none' for no upstream (default: the configuration's, as `serve`).",
)
@click.option(
    "--owner",
    metavar="USER_OR_GROUP",
    help="Make this user or group (user:NAME or group:NAME when both exist) the owner of "
    "each project the import creates, as the first uploader of a new project becomes its "
    "owner. Without it, new projects have no owner until `packyard owner add`.",
)
@click.option(
    "--allow-public-names",
    is_flag=True,
    help="Only for an administrator who means it: let new projects take names of public "
    "projects on the upstreams (or look-alikes), which then HIDE those public projects "
    "from every user of this index. Each name taken this way is written to the audit log. "
    "Prefer `packyard name allow NAME` for the few names you mean.",
)
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_errors
def import_command(
    config_file: Path | None,
    data_dir: Path | None,
    upstreams: tuple[str, ...],
    owner: str | None,
    allow_public_names: bool,
    directory: Path,
) -> None:
    """Add every wheel and sdist in DIRECTORY (recursively) to the in-house store,
    under the rules of an upload.

    Each file is added whole or not at all, and checked as an upload would be:
    its size (`upload.max_file_size`), its archive and its metadata. A file of
    a new project passes the name guard of uploads: a standard-library name,
    or the name (or a look-alike) of a public project on an upstream, is
    refused unless an administrator allowed it with `packyard name allow`.
    Each refused file is reported on one line (its name and why) and the rest
    imported; every import and refusal is in the audit log. Exits 1 if any
    file was refused.
    """
    settings = settings_from(config_file, data_dir=data_dir, upstreams=upstreams)
    rules = ImportRules(
        actor=operator(),
        owner=owner,
        allow_public_names=allow_public_names,
        limits=settings.upload,
    )
    report = import_with_progress(settings, directory, rules)
    for result in report.refused:
        click.echo(f"refused: {result.line}", err=True)
    for result in report.errors:
        click.echo(f"error: {result.line}", err=True)
    for result in report.added:
        if result.message:
            click.echo(f"warning: {result.line}", err=True)
    ownerless = sorted({r.created for r in report.added if r.created} if owner is None else ())
    if ownerless:
        click.echo(
            f"warning: new projects without an owner (give --owner, or run `packyard owner "
            f"add PROJECT --user NAME`): {', '.join(ownerless)}",
            err=True,
        )
    refused = len(report.refused) + len(report.errors)
    click.echo(
        f"{len(report.added)} added, {len(report.skipped)} already present, {refused} refused"
    )
    if not report.ok:
        sys.exit(1)
