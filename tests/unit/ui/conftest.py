"""A browser over a real in-house store (SQLite + blobs) and an in-memory upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import update
from typing_extensions import override

from packyard.app import create_app
from packyard.browser.catalog import LocalCatalog
from packyard.browser.provenance import ProvenanceRecords
from packyard.browser.service import Browser
from packyard.db.models import File
from packyard.db.serial import bump_serial
from packyard.errors import FileNotFound, ProjectNotFound, UpstreamUnavailable
from packyard.model import (
    DistFile,
    InlineFile,
    ProjectDetail,
    ProjectEntry,
    ProjectList,
    RequestContext,
    Resource,
)
from packyard.publish.importer import import_directory
from packyard.repository.base import Repository
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import MetadataRepository
from packyard.repository.priority import PriorityRepository
from packyard.search.index import SearchIndex, open_index
from packyard.search.recorder import SearchRecorder
from packyard.search.sync import InHouseSync
from tests.builders import (
    LocalStore,
    build_sdist,
    build_wheel,
    make_local_store,
    metadata_text,
    store_unchecked,
)

HOSTILE = '<script>window.xss=1</script><img src=x onerror="window.xss=2">'
PUBLIC_METADATA = metadata_text(
    "HTTPX",
    "0.28.1",
    summary="The next generation HTTP client.",
    requires_dist=("idna", 'h2>=3; extra == "http2"'),
    description="# HTTPX\n\nA client.",
)


class FakeUpstream(Repository):
    """One public project, `httpx`, whose wheel has a `.metadata` file."""

    def __init__(self) -> None:
        self.down = False
        self.metadata_requests = 0
        wheel = DistFile(
            "httpx-0.28.1-py3-none-any.whl",
            url="https://upstream.example/httpx-0.28.1-py3-none-any.whl",
            hashes={"sha256": "ab" * 32},
            core_metadata=True,
            size=73_500,
            provenance="javascript:alert(1)",
        )
        self.page = ProjectDetail("httpx", (wheel,), ("0.28.1",), source="pypi")

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        return ProjectList((ProjectEntry("httpx"),))

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        if self.down:
            raise UpstreamUnavailable("pypi", "could not be reached")
        if name != "httpx":
            raise ProjectNotFound(name)
        return self.page

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        page = await self.get_project(name, ctx)
        if filename != page.files[0].filename + ".metadata":
            raise FileNotFound(name, filename)
        self.metadata_requests += 1
        content = PUBLIC_METADATA.encode()
        return InlineFile(filename, content, sha256(content).hexdigest())


def build_dists(directory: Path, unchecked: Path) -> None:
    """The in-house files: those of `unchecked` break an upload rule (an unsafe URL)."""
    tools_metadata = metadata_text(
        "Acme.Tools",
        "1.1",
        summary="The in-house tools",
        requires_dist=("acme-core[fast]>=1.0", 'httpx; python_version >= "3.11"'),
        requires_python=">=3.11",
        description="# Acme tools\n\nUse **them**.\n\n" + HOSTILE,
        project_urls=(("Repository", "https://git.example/acme"), ("Evil", "javascript:alert(1)")),
    )
    build_wheel(unchecked, "Acme.Tools", "1.1", metadata=tools_metadata)
    build_wheel(directory, "Acme.Tools", "1.0", summary="Old tools")
    build_wheel(directory, "Acme.Tools", "2.0b1", summary="Next tools")
    build_wheel(directory, "acme-core", "1.0", summary="Core " + HOSTILE)
    build_sdist(directory, "acme-sdist-only", "0.1", summary="Only a source archive")


@dataclass
class Site:
    client: httpx.AsyncClient
    store: LocalStore
    upstream: FakeUpstream
    index: SearchIndex
    browser: Browser
    recorder: SearchRecorder

    def yank(self, filename: str, reason: str) -> None:
        with self.store.sessions.begin() as session:
            session.execute(
                update(File)
                .where(File.filename == filename)
                .values(yanked=True, yanked_reason=reason)
            )
            bump_serial(session)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    dists, unchecked = tmp_path / "dists", tmp_path / "unchecked"
    dists.mkdir()
    unchecked.mkdir()
    build_dists(dists, unchecked)
    store = make_local_store(tmp_path / "store")
    report = anyio.run(import_directory, dists, store.sessions, store.store)
    assert report.ok, report
    for path in sorted(unchecked.iterdir()):
        anyio.run(store_unchecked, store, path)
    yield store
    store.engine.dispose()


@pytest.fixture
async def site(store: LocalStore) -> AsyncIterator[Site]:
    upstream = FakeUpstream()
    local = MetadataRepository(LocalRepository(store.sessions, store.store), store.store)
    index = open_index("sqlite://")
    chain = SearchRecorder(PriorityRepository([local, upstream]), index)
    catalog = LocalCatalog(store.sessions)
    sync = InHouseSync(index, catalog, chain, interval=0)
    browser = Browser(chain, index, catalog, sync, provenance=ProvenanceRecords(store.sessions))
    transport = httpx.ASGITransport(app=create_app(chain, browser=browser))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        yield Site(client, store, upstream, index, browser, chain)
    await chain.aclose()
