"""`packyard serve`: run the services."""

from __future__ import annotations

from pathlib import Path

import click

from packyard.cli import reports_errors, settings_from, state_options


@click.command()
@state_options
@click.option("--host", help="Address to listen on (default 127.0.0.1; env PACKYARD_HOST).")
@click.option("--port", type=int, help="Port to listen on (default 8000; env PACKYARD_PORT).")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Upstream index URL; repeat for several, in priority order after the local store. "
    "'none' for no upstream (default https://pypi.org/simple/; env PACKYARD_UPSTREAM).",
)
@click.option("--workers", type=int, help="Worker processes (default 1; env PACKYARD_WORKERS).")
@click.option(
    "--role",
    type=click.Choice(["all", "index", "upload", "browser"]),
    help="The services to serve: all (default), or only the index (/simple/, /files/), "
    "the upload service (/legacy/, /api/) or the web pages (env PACKYARD_ROLE).",
)
@click.option(
    "--no-migrate",
    "no_migrate",
    is_flag=True,
    default=None,
    help="Do not migrate the database at start (`packyard migrate` does it).",
)
@reports_errors
def serve(
    config_file: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    upstreams: tuple[str, ...],
    workers: int | None,
    role: str | None,
    no_migrate: bool | None,
) -> None:
    """Run the index, upload, browser and API services (or one role of them)."""
    from packyard.server import run

    settings = settings_from(
        config_file,
        data_dir=data_dir,
        host=host,
        port=port,
        upstreams=upstreams,
        workers=workers,
        role=role,
        migrate=False if no_migrate else None,
    )
    run(settings)
