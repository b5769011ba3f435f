"""Building the browser service from the settings (called from `compose.py`)."""

from __future__ import annotations

from sqlalchemy import Engine

from packyard.advisories.index import AdvisoryIndexReader
from packyard.browser.catalog import LocalCatalog
from packyard.browser.people import PeopleRecords
from packyard.browser.provenance import ProvenanceRecords
from packyard.browser.readmes import Readmes
from packyard.browser.service import Browser
from packyard.browser.usage import ProjectDownloads
from packyard.browser.vulnerabilities import Vulnerabilities
from packyard.db.engine import session_factory_for
from packyard.db.usage import UsagePopularity
from packyard.repository.base import Repository
from packyard.search.index import SearchIndex, open_index
from packyard.search.sync import InHouseSync
from packyard.settings import Settings


def search_url(settings: Settings) -> str:
    """Where the search index lives: `browser.search_url` if set; else the store's
    database when it is PostgreSQL (one index shared by every replica); else
    its own SQLite file, `<data_dir>/search.db`."""
    if settings.browser.search_url:
        return settings.browser.search_url
    if settings.database_url and settings.database_url.startswith("postgresql"):
        return settings.database_url
    return f"sqlite:///{(settings.data_dir / 'search.db').resolve()}"


def open_search_index(settings: Settings) -> SearchIndex:
    """The search index for these settings, its tables created if missing."""
    return open_index(search_url(settings))


def build_browser(
    settings: Settings,
    engine: Engine,
    chain: Repository,
    index: SearchIndex,
    readmes: Readmes | None = None,
    advisories: AdvisoryIndexReader | None = None,
) -> Browser:
    """The browser over `chain` (the full read chain), the store's `engine`, `index`,
    `readmes` (None: rendered on each first view in this process, not kept) and
    the process's `advisories` (None: pages show none). README images load from
    `[browser] image_hosts` only; others are shown as their alt text."""
    sessions = session_factory_for(engine)
    catalog = LocalCatalog(sessions)
    # Search ranks equals by downloads here: the usage roll-ups (when counted).
    popularity = UsagePopularity(sessions) if settings.telemetry.usage else None
    sync = InHouseSync(
        index, catalog, chain, index_names=settings.browser.index_names, popularity=popularity
    )
    vulnerabilities = Vulnerabilities(advisories, sessions) if advisories is not None else None
    provenance = ProvenanceRecords(sessions, settings.attestations.require)
    downloads = ProjectDownloads(sessions) if settings.telemetry.usage else None
    readmes = (readmes or Readmes()).showing_images_from(settings.browser.image_hosts)
    return Browser(
        chain,
        index,
        catalog,
        sync,
        readmes,
        vulnerabilities,
        provenance,
        downloads,
        people=PeopleRecords(sessions),
    )


def standalone_browser(chain: Repository) -> Browser:
    """A browser over `chain` alone, with an in-memory search index and no
    in-house catalog: for an app built without settings (tests, embedding)."""
    return Browser(chain, open_index("sqlite://"))
