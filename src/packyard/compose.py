"""Wiring: the one place where stores, clients and the component chain are built.

The chain, in priority order (DESIGN §2):

    MetadataRepository(AdvisoryRepository(YankRepository(PriorityRepository([
        LocalRepository, PolicyRepository(CacheRepository(UpstreamRepository))...]))))

then every extra component named in `Settings.components` (`module:callable`),
each called with the chain built so far and the settings, returning the new chain.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import cast

import anyio.to_thread
import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from packyard.advisories.index import AdvisoryIndexReader
from packyard.advisories.refresh import AdvisoryRefresh
from packyard.app import create_app
from packyard.attestations.requirement import UploadAttestations
from packyard.attestations.stored import stored_provenance
from packyard.attestations.verify import AttestationVerifier
from packyard.auth.authenticate import Authenticators
from packyard.auth.directory.ldap import LdapDirectory
from packyard.auth.jwks import KeySets
from packyard.auth.sso.provider import SsoProvider
from packyard.browser.build import build_browser, open_search_index
from packyard.browser.readmes import Readmes
from packyard.db.engine import (
    create_database_engine,
    head_revision,
    migrate,
    schema_problem,
    session_factory_for,
)
from packyard.db.freshness import SerialWatcher, open_serial_watcher
from packyard.db.serial import follow_commits
from packyard.errors import ConfigurationError, PackyardError, StoreUnavailable
from packyard.model import StoredFile
from packyard.publish.directory_refresh import DirectoryRefresh
from packyard.publish.name_guard import NameGuard
from packyard.publish.upload import UploadService
from packyard.repository.advisories import AdvisoryRepository, ConfiguredPolicies
from packyard.repository.base import Repository
from packyard.repository.cache import build_file_cache, cached_upstream, page_store_for
from packyard.repository.file_cache import DownloadCheck
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import MetadataRepository
from packyard.repository.policy import apply_policy
from packyard.repository.policy_rules import StoredRulesReader
from packyard.repository.priority import PriorityRepository
from packyard.repository.remote_metadata import MetadataCheck, RemoteMetadataReader
from packyard.repository.upstream_provenance import UpstreamProvenance
from packyard.repository.yank import YankRepository
from packyard.routes.api import ApiServices, api_app
from packyard.routes.domain_errors import DomainErrorResponses
from packyard.routes.files import FilesRoute, Presigner
from packyard.routes.health import Readiness, ReadinessCheck
from packyard.routes.integrity import IntegrityRoute
from packyard.routes.osv import OsvRoute
from packyard.routes.read_auth import read_guard
from packyard.routes.roles import RoleGate
from packyard.routes.ui.admin import (
    SessionIdentities,
    SignInSettings,
    ViewerMiddleware,
    admin_routes,
    load_secret,
)
from packyard.routes.ui.assets import StaticAssets
from packyard.routes.ui.help import HELP_PATH
from packyard.routes.ui.templating import Templates
from packyard.routes.upload import upload_routes
from packyard.search.recorder import SearchRecorder
from packyard.settings import Settings, UpstreamSettings
from packyard.storage.base import BlobStore
from packyard.storage.location import (
    CACHED_FILES,
    CACHED_PAGES,
    FILES,
    BlobStorage,
    open_blob_storage,
)
from packyard.storage.sweep import PAGE_TEMP_PATTERN, TempSweeper
from packyard.telemetry import Telemetry, prepare_multiprocess
from packyard.telemetry.usage import UsageFlusher

ComponentFactory = Callable[[Repository, Settings], Repository]


def prepare_state(settings: Settings) -> Engine:
    """Create the data directory and bring the database schema up to date
    (unless `settings.migrate` is off: then `packyard migrate` does it, and
    `/readyz` says not ready until it has)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(settings.resolved_database_url)
    if settings.migrate:
        migrate(engine)
    # Before any worker starts: their shared Prometheus directory (several workers).
    prepare_multiprocess(settings)
    return engine


def build_chain(
    settings: Settings,
    sessions: sessionmaker[Session],
    storage: BlobStorage,
    telemetry: Telemetry | None = None,
    upstream_sources: list[Repository] | None = None,
    watcher: SerialWatcher | None = None,
    advisories: AdvisoryIndexReader | None = None,
) -> Repository:
    """The read path, from the configuration, over the database of `sessions`
    and the blobs of `storage`.

    `upstream_sources`, if given, receives each upstream as the name guard must
    see it: uncurated, so that a name hidden by a policy still counts as public.
    `watcher`, if given, is shared by every component that follows the store's
    serial (one check per event-loop turn for all of them); the caller closes it.
    Without one, each such component opens and owns its own. `advisories`, if
    given, is the process's one advisory index (the caller closes it); without
    one, the chain opens and owns its own.
    """
    store = storage.store(FILES)
    local = LocalRepository(sessions, store, watcher=watcher)
    # Upstream wheels' METADATA, read by range requests once and kept for good,
    # and checked against the whole wheel when it is downloaded.
    remote = RemoteMetadataReader(store, sessions, temp_dir=settings.data_dir / "spool")
    sources = cached_upstreams(settings, sessions, storage, MetadataCheck(remote))
    if upstream_sources is not None:
        upstream_sources.extend(sources)
    upstreams = [
        _curated(source, upstream, telemetry, sessions, watcher)
        for source, upstream in zip(sources, settings.upstreams, strict=True)
    ]
    # Yank overrides and advisories apply to the merged page (its `source` says
    # upstream or local), below the metadata component and any configured one.
    merged = PriorityRepository([local, *upstreams])
    yanks = YankRepository(merged, sessions, watcher=watcher)
    vulnerable = AdvisoryRepository(
        yanks,
        advisories or AdvisoryIndexReader(sessions, watcher=watcher),
        ConfiguredPolicies.of(settings.advisories, settings.upstreams),
        owns_reader=advisories is None,
    )
    chain: Repository = MetadataRepository(
        vulnerable,
        store,
        remote=remote,
        read_ahead=settings.cache.metadata_read_ahead,
        follow_dependencies=settings.cache.read_ahead_dependencies,
    )
    for spec in settings.components:
        factory = load_component(spec)
        try:
            chain = factory(chain, settings)
        except Exception as exc:  # someone else's code: any failure is a configuration's
            raise ConfigurationError(
                f"component {spec!r} failed to build: {type(exc).__name__}: {exc}"
            ) from exc
    return chain


def cached_upstreams(
    settings: Settings,
    sessions: sessionmaker[Session],
    storage: BlobStorage,
    check: DownloadCheck | None = None,
) -> list[Repository]:
    """Each upstream of `settings` behind its cache, uncurated: files, pages and
    their bookkeeping shared by every replica (the database and the blob
    storage). `check` runs on every complete download it applies to."""
    files = build_file_cache(sessions, storage.store(CACHED_FILES), settings.cache, check)
    pages_dir = storage.local_root / CACHED_PAGES if storage.local_root is not None else None
    pages = storage.store(CACHED_PAGES)
    return [
        cached_upstream(
            upstream,
            page_store_for(upstream, pages_dir=pages_dir, sessions=sessions, store=pages),
            files,
        )
        for upstream in settings.upstreams
    ]


def _curated(
    source: Repository,
    upstream: UpstreamSettings,
    telemetry: Telemetry | None,
    sessions: sessionmaker[Session],
    watcher: SerialWatcher | None,
) -> Repository:
    """One upstream as the merge sees it: observed by telemetry, curated by its policy
    (allow, deny, cool-down: `repository/policy.py`), configured and stored in the
    database by admins at runtime (`publish/policies.py`)."""
    if telemetry is not None:
        source = telemetry.observe_upstream(source, upstream.label)
    rules = StoredRulesReader(sessions, upstream.label, watcher=watcher)
    return apply_policy(source, upstream, rules)


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
    # Now rather than on the first request, which would pay ~100 ms for it.
    configure_mappers()
    # One session factory and one blob storage for the whole process. Every
    # write commits through these sessions and tells the serial watcher its
    # new serial: the next request reads the write.
    sessions = session_factory_for(engine)
    # Only the server keeps local copies of what it serves (`[s3] local_copies_mb`).
    storage = open_blob_storage(settings, local_copies=True)
    store = storage.store(FILES)
    telemetry = Telemetry.from_settings(settings)
    index = open_search_index(settings)
    # Outermost in the chain: notes each public project served, for the search.
    upstream_sources: list[Repository] = []
    # One serial watcher for the whole chain: one freshness check per loop turn.
    watcher = open_serial_watcher(engine)
    follow_commits(sessions, watcher.saw)
    advisories = AdvisoryIndexReader(sessions, watcher=watcher)
    chain = SearchRecorder(
        build_chain(settings, sessions, storage, telemetry, upstream_sources, watcher, advisories),
        index,
    )
    # READMEs rendered once per file, at upload or first view, for every replica.
    readmes = Readmes(sessions)
    browser = build_browser(settings, engine, chain, index, readmes, advisories)
    # Fetches CI issuers' keys; one per worker, closed by the app's lifespan.
    http_client = httpx.AsyncClient(timeout=30.0)
    metrics = telemetry.metrics
    authenticators = Authenticators(
        sessions,
        settings.auth,
        http_client,
        observe=metrics.password_check if metrics is not None else None,
    )
    uploads = build_upload_routes(
        settings, sessions, store, upstream_sources, authenticators, readmes
    )
    api = api_app(
        ApiServices(
            sessions,
            authenticators,
            store,
            settings.upstreams,
            settings.advisories,
            settings.attestations,
            settings.auth.succession,
        )
    )
    # Signs the admin pages' cookies: the same secret in every replica (decisions.md),
    # read on first use (the database may not be migrated yet).
    secret = partial(load_secret, sessions, settings.browser.session_secret, settings.data_dir)
    guard = None
    if settings.auth.read_requires_auth:
        guard = read_guard(
            authenticators,
            settings.auth.credential_cache_seconds,
            SessionIdentities(sessions, secret),
        )
    templates = Templates(
        StaticAssets(), public_url=settings.public_url, image_hosts=settings.browser.image_hosts
    )
    admin = admin_routes(
        sessions,
        store,
        authenticators,
        secret,
        secure_cookies=settings.browser.secure_cookies,
        templates=templates,
        attestations_default=settings.attestations.require,
        sign_in=sign_in_settings(settings, http_client),
        fallback_group=settings.auth.succession.fallback_group,
        upstreams=settings.upstreams,
    )
    app = create_app(
        chain,
        files_app=FilesRoute(chain, redirect=_presigner(settings)),
        browser=browser,
        routes=[*uploads, *admin],
        middleware=[
            # First: a domain error that escaped (the database down) is its status, not a 500.
            Middleware(DomainErrorResponses),
            Middleware(ViewerMiddleware, sessions=sessions, secret=secret),
        ],
        api=api,
        osv=OsvRoute(advisories, sessions),
        integrity=IntegrityRoute(
            chain,
            stored_provenance(sessions),
            UpstreamProvenance.of(upstream_sources, store, sessions),
        ),
        read_guard=guard,
        on_shutdown=[http_client.aclose, _closer(watcher)],
        readiness=Readiness(
            {"database": _schema_check(engine), "blob store": _storage_check(storage)}
        ),
        templates=templates,
        public_url=settings.public_url,
        background=[
            advisories.preloaded,
            *_advisory_refresh(settings, sessions, http_client),
            temp_sweeper(settings, storage).running,
            *_directory_refresh(settings, sessions),
            *_usage_flusher(settings, telemetry, sessions),
        ],
    )
    if settings.role != "all":
        app = RoleGate(app, settings.role)
    # Outermost: measures every request, serves /metrics, emits download events.
    return telemetry.instrument(app)


def _schema_check(engine: Engine) -> ReadinessCheck:
    """Ready when the database answers with its schema at this code's revision."""
    head = head_revision()

    async def check() -> str | None:
        return await anyio.to_thread.run_sync(schema_problem, engine, head)

    return check


def _presigner(settings: Settings) -> Presigner | None:
    """With `[s3] presigned_downloads`: stored files are answered with a redirect
    to a presigned URL of their object (a store that cannot presign streams)."""
    if not settings.s3.presigned_downloads:
        return None
    expiry = settings.s3.presigned_expiry_seconds

    async def presign(resource: StoredFile) -> str | None:
        sign = getattr(resource.store, "presigned_url", None)
        return None if sign is None else cast(str, await sign(resource.key, expiry))

    return presign


def _storage_check(storage: BlobStorage) -> ReadinessCheck:
    """Ready when the blob storage answers."""

    async def check() -> str | None:
        try:
            await storage.ping()
        except StoreUnavailable as exc:
            return exc.message
        return None

    return check


def _advisory_refresh(
    settings: Settings, sessions: sessionmaker[Session], client: httpx.AsyncClient
) -> list[Callable[[], AbstractAsyncContextManager[None]]]:
    """With `[advisories] source`: its scheduled import, run by every worker of
    every replica while it serves; one of them imports per period."""
    if settings.advisories.source is None:
        return []
    spool = settings.data_dir / "spool"
    return [AdvisoryRefresh(sessions, settings.advisories, spool=spool, client=client).running]


def sign_in_settings(settings: Settings, http_client: httpx.AsyncClient) -> SignInSettings:
    """How people sign in to the pages: the `[[auth.sso]]` providers (discovered on
    first use), `local_passwords`, and the directory their groups come from
    (their secrets are checked by `preflight.py`)."""
    auth = settings.auth
    key_sets = KeySets(http_client)
    return SignInSettings(
        providers=[SsoProvider(provider, http_client, key_sets) for provider in auth.sso],
        local_passwords=auth.local_passwords,
        groups=auth.directory_groups,
        directory=LdapDirectory(auth.ldap) if auth.ldap is not None else None,
        directory_timeout=auth.ldap.timeout_seconds if auth.ldap is not None else 5.0,
    )


def _directory_refresh(
    settings: Settings, sessions: sessionmaker[Session]
) -> list[Callable[[], AbstractAsyncContextManager[None]]]:
    """With `[auth.ldap]` or `[auth.succession] max_inactive_days`: the scheduled
    look at the directory, by every worker of every replica, one of them per period."""
    directory = LdapDirectory(settings.auth.ldap) if settings.auth.ldap is not None else None
    refresh = DirectoryRefresh(sessions, directory, settings.auth)
    return [refresh.running] if refresh.needed else []


def _usage_flusher(
    settings: Settings, telemetry: Telemetry, sessions: sessionmaker[Session]
) -> list[Callable[[], AbstractAsyncContextManager[None]]]:
    """With `[telemetry] usage`: this worker's counts added to the daily roll-ups
    every `usage_flush_seconds`, and at shutdown (`telemetry/usage.py`)."""
    if telemetry.usage is None:
        return []
    flusher = UsageFlusher(telemetry.usage, sessions, settings.telemetry.usage_flush_seconds)
    return [flusher.running]


def temp_sweeper(settings: Settings, storage: BlobStorage) -> TempSweeper:
    """What removes crashed writes' temporary files (`storage/sweep.py`): every area
    of the blob storage, the page cache's files and the spool directory."""
    stores = [storage.store(area) for area in (FILES, CACHED_FILES, CACHED_PAGES)]
    local_dirs = [(settings.data_dir / "spool", "*")]
    if storage.local_root is not None:
        local_dirs.append((storage.local_root / CACHED_PAGES, PAGE_TEMP_PATTERN))
    return TempSweeper(
        stores,
        local_dirs,
        max_age=settings.stale_temp_seconds,
        interval=settings.temp_sweep_seconds,
    )


def _closer(watcher: SerialWatcher) -> Callable[[], Awaitable[None]]:
    """An app shutdown hook that closes the shared serial watcher."""

    async def close() -> None:
        watcher.close()

    return close


def build_upload_routes(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: BlobStore,
    upstream_sources: Sequence[Repository],
    authenticators: Authenticators,
    readmes: Readmes | None = None,
) -> list[BaseRoute]:
    """`/legacy/`: the upload service over the in-house store, with the name guard
    over the upstreams and every way of signing in."""
    guard = NameGuard(sessions, upstream_sources)
    after_upload = readmes.prepare if readmes is not None else None
    # Refusals link to this server's help page, absolute when the site's URL is known.
    help_url = (settings.public_url or "/").rstrip("/") + HELP_PATH
    service = UploadService(
        sessions,
        store,
        guard,
        settings.upload,
        after_upload=after_upload,
        help_url=help_url,
        refuse_affected_requirements=settings.advisories.refuse_uploads,
        attestations=upload_attestations(settings, help_url),
    )
    return upload_routes(service, authenticators)


def upload_attestations(settings: Settings, help_url: str = HELP_PATH) -> UploadAttestations:
    """The PEP 740 checks of uploads, on the configured trust root and CI issuers.

    Raises:
        ConfigurationError: `[attestations] trusted_root` cannot be read.
    """
    config = settings.attestations
    return UploadAttestations(
        AttestationVerifier(config.trusted_root),
        settings.auth.oidc,
        config.require,
        help_url=help_url,
    )


def app_from_environment() -> ASGIApp:
    """uvicorn's factory in each worker: the settings come from the parent process.

    A worker that cannot build the application exits with uvicorn's
    `STARTUP_FAILURE`, which stops the supervisor instead of starting the
    worker again and again (`serve` checks first what it can: `preflight.py`).
    """
    from packyard.server import SETTINGS_VARIABLE, report_startup_failure

    try:
        app = build_app(Settings.model_validate_json(os.environ[SETTINGS_VARIABLE]))
    except Exception as exc:
        message = exc.message if isinstance(exc, PackyardError) else f"{type(exc).__name__}: {exc}"
        logging.getLogger("packyard").error("packyard cannot start: %s", message)
        report_startup_failure(message)
        sys.exit(STARTUP_FAILURE)
    # Everything built so far lives as long as the process: keep it out of the
    # garbage collector's scans, which otherwise show up as latency spikes.
    gc.freeze()
    return app
