"""Running the ASGI application under uvicorn, with one or many workers."""

from __future__ import annotations

import os

import anyio
import uvicorn

from packyard.http_protocol import HttpLimits, protocol_factory
from packyard.settings import HttpSettings, Settings

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
        # httptools and uvloop: the fastest parser and loop uvicorn offers (bench/RESULTS.md);
        # the protocol adds the head size and time limits and the connection limit.
        loop="uvloop",
        http=protocol_factory(http_limits(settings.http)),
        timeout_keep_alive=settings.http.keep_alive_timeout,
        # No WebSocket route exists: an Upgrade request is served as plain HTTP.
        ws="none",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        # On SIGTERM uvicorn stops accepting, then lets requests in flight
        # (downloads, uploads) finish for this long before it cancels them.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def http_limits(settings: HttpSettings) -> HttpLimits:
    """The `[http]` settings as the protocol of each connection takes them."""
    return HttpLimits(
        max_request_line_bytes=settings.max_request_line_bytes,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )
