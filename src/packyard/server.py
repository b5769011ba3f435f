"""Running the ASGI application under uvicorn, with one or many workers."""

from __future__ import annotations

import os

import anyio
import uvicorn

from packyard.settings import Settings

SETTINGS_VARIABLE = "PACKYARD_SETTINGS_JSON"
"""How the parent process hands the validated settings to each worker."""


def run(settings: Settings) -> None:
    """Prepare the state (directories, database schema, a check of the blob
    storage), then serve until stopped.

    Migrations run once here, in the parent, before any worker starts, so that
    workers never race each other on the schema.
    """
    from packyard.compose import prepare_state
    from packyard.storage.location import open_blob_storage

    prepare_state(settings)
    # A missing bucket or refused credentials stop the start, naming the setting.
    anyio.run(open_blob_storage(settings).check)
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    uvicorn.run(
        "packyard.compose:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # httptools and uvloop: the fastest parser and loop uvicorn offers (bench/RESULTS.md).
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        # On SIGTERM uvicorn stops accepting, then lets requests in flight
        # (downloads, uploads) finish for this long before it cancels them.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
