"""What `packyard serve` checks once, before any worker starts.

uvicorn's supervisor starts a new worker each time one dies: a worker that
cannot build the application (a component that cannot be imported, a
metrics token file that cannot be read) would die and be started again,
forever, a traceback each time. So the parent process first builds and
checks, once, every part that can fail on the configuration: the blob
storage answers, the attestations' trust root and the sign-in secrets read,
every component loads
and accepts the chain, the search index opens, the metrics token and the
event log's folder can be used. The first failure stops `serve` with its
message (`packyard.cli.reports_errors`).

It also removes the temporary files a crashed process left
(`storage/sweep.py`) before any worker can start a write of its own.
"""

from __future__ import annotations

import logging
import os

from packyard.browser.build import open_search_index
from packyard.compose import build_chain, temp_sweeper, upload_attestations
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.errors import ConfigurationError
from packyard.settings import Settings
from packyard.storage.location import open_blob_storage
from packyard.telemetry.exposition import read_token

logger = logging.getLogger(__name__)


async def check_before_serving(settings: Settings) -> None:
    """Build and check, in this process, what every worker will build.

    Raises:
        ConfigurationError: a setting that cannot work (storage, a component,
            the metrics token file, the events file's folder), with its message.
        StoreUnavailable: the object store does not answer.
        DatabaseUnavailable: the database does not answer.
    """
    storage = open_blob_storage(settings)
    # A missing bucket or refused credentials stop the start, naming the setting.
    await storage.check()
    _check_telemetry(settings)
    open_search_index(settings).close()
    upload_attestations(settings)  # the trust root file is read and parsed
    _check_sign_in(settings)
    engine = create_database_engine(settings.resolved_database_url)
    try:
        # Imports and calls every configured component, as each worker will.
        chain = build_chain(settings, session_factory_for(engine), storage)
        await chain.aclose()
        await temp_sweeper(settings, storage).sweep_once()
    finally:
        engine.dispose()


def _check_sign_in(settings: Settings) -> None:
    """The providers' client secrets and the LDAP bind secret can be read; the
    providers and the directory themselves are asked only when someone signs in,
    so that one that is down does not stop packyard starting."""
    for provider in settings.auth.sso:
        provider.secret()
    if settings.auth.ldap is not None:
        settings.auth.ldap.secret()


def _check_telemetry(settings: Settings) -> None:
    config = settings.telemetry
    if config.metrics and config.metrics_token_file is not None:
        read_token(config.metrics_token_file)
    if config.events and config.events_file is not None:
        folder = config.events_file.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(
                f"telemetry.events_file {str(config.events_file)!r}: its folder cannot be "
                f"created: {error.strerror or error}"
            ) from error
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigurationError(
                f"telemetry.events_file {str(config.events_file)!r}: its folder is not writable"
            )
