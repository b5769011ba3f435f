"""Wiring: the one place where stores, clients and the component chain are built.

The chain, in priority order (DESIGN §2):

    MetadataRepository(PriorityRepository([LocalRepository, UpstreamRepository...]))

then every extra component named in `Settings.components` (`module:callable`),
each called with the chain built so far and the settings, returning the new chain.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import cast

from sqlalchemy import Engine
from starlette.types import ASGIApp

from packyard.app import create_app
from packyard.db.engine import create_database_engine, migrate, session_factory_for
from packyard.errors import ConfigurationError
from packyard.repository.base import Repository
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import MetadataRepository
from packyard.repository.priority import PriorityRepository
from packyard.repository.upstream import UpstreamRepository, make_upstream_client
from packyard.routes.files import FilesRoute
from packyard.settings import Settings
from packyard.storage.filesystem import FilesystemBlobStore

ComponentFactory = Callable[[Repository, Settings], Repository]


def prepare_state(settings: Settings) -> Engine:
    """Create the data directory and bring the database schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(settings.resolved_database_url)
    migrate(engine)
    return engine


def build_chain(settings: Settings, engine: Engine) -> Repository:
    """The read path, from the configuration."""
    store = FilesystemBlobStore(settings.blob_dir)
    local = LocalRepository(session_factory_for(engine), store)
    upstreams = [
        UpstreamRepository(upstream, make_upstream_client(upstream))
        for upstream in settings.upstreams
    ]
    chain: Repository = MetadataRepository(PriorityRepository([local, *upstreams]), store)
    for spec in settings.components:
        chain = load_component(spec)(chain, settings)
    return chain


def load_component(spec: str) -> ComponentFactory:
    """Import `module:callable` named in the configuration.

    Raises:
        ConfigurationError: the module or the callable cannot be found.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"component {spec!r} must be written as 'module:callable'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"component {spec!r} cannot be loaded: {exc}") from exc
    if not callable(factory):
        raise ConfigurationError(f"component {spec!r} is not callable")
    return cast(ComponentFactory, factory)


def build_app(settings: Settings) -> ASGIApp:
    """The whole ASGI application for these settings."""
    engine = create_database_engine(settings.resolved_database_url)
    chain = build_chain(settings, engine)
    return create_app(chain, files_app=FilesRoute(chain))


def app_from_environment() -> ASGIApp:
    """uvicorn's factory in each worker: the settings come from the parent process."""
    from packyard.server import SETTINGS_VARIABLE

    return build_app(Settings.model_validate_json(os.environ[SETTINGS_VARIABLE]))
