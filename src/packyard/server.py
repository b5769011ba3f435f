"""Running the ASGI application under uvicorn, with one or many workers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import anyio
import uvicorn

from packyard.errors import ConfigurationError
from packyard.http_protocol import HttpLimits, protocol_factory
from packyard.settings import HttpSettings, Settings

SETTINGS_VARIABLE = "PACKYARD_SETTINGS_JSON"
"""How the parent process hands the validated settings to each worker."""
FAILURE_VARIABLE = "PACKYARD_STARTUP_FAILURE_FILE"
"""Where a worker that cannot start leaves its reason for the parent."""


def run(settings: Settings) -> None:
    """Prepare the state (directories, database schema), check everything a worker
    will build (`preflight.py`: the blob storage, every component, ...), then
    serve until stopped.

    Migrations and checks run once here, in the parent, before any worker
    starts, so that workers never race each other on the schema, and a
    configuration that cannot work stops `serve` with its message instead of
    workers that die and are started again.

    Raises:
        ConfigurationError, StoreUnavailable, DatabaseUnavailable: from the
            checks; ConfigurationError also when a worker could not start after all.
    """
    from packyard.compose import prepare_state
    from packyard.preflight import check_before_serving

    prepare_state(settings)
    anyio.run(check_before_serving, settings)
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    with tempfile.NamedTemporaryFile(prefix="packyard-startup-") as failure:
        os.environ[FAILURE_VARIABLE] = failure.name
        try:
            _serve(settings)
        except SystemExit:  # one worker, in this process: uvicorn exits
            if not Path(failure.name).read_text():
                raise
        reason = Path(failure.name).read_text()
    if reason:
        # A worker could not start (`compose.app_from_environment`), and uvicorn stopped.
        raise ConfigurationError(f"a worker could not start: {reason}")


def report_startup_failure(reason: str) -> None:
    """In a worker that cannot build the application: tell the parent why (`run`)."""
    path = os.environ.get(FAILURE_VARIABLE)
    if path:
        with contextlib.suppress(OSError):
            Path(path).write_text(reason)


def _serve(settings: Settings) -> None:
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
        # Under a prefix (`public_url = "https://host/pypi/"`) the proxy strips it and
        # uvicorn puts it back as `root_path`: routes match below it, links include it.
        root_path=settings.url_prefix,
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
