"""MetadataRepository: PEP 658 `.metadata` files, byte-identical to the wheel's METADATA."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File
from packyard.errors import FileNotFound, PackyardError
from packyard.model import (
    ANONYMOUS,
    DistFile,
    InlineFile,
    ProjectDetail,
    ProjectList,
    RequestContext,
    Resource,
)
from packyard.publish.importer import import_directory
from packyard.repository.base import Repository
from packyard.repository.local import LocalRepository
from packyard.repository.metadata import METADATA_CONTENT_TYPE, MetadataRepository
from packyard.repository.remote_metadata import RemoteMetadataReader
from packyard.storage.filesystem import FilesystemBlobStore
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store
from tests.unit.fakes import MemoryRepository

UPSTREAM_METADATA = InlineFile("up-1.0-py3-none-any.whl.metadata", b"up", "0" * 64)


class FakeUpstream(Repository):
    """A source whose pages are not local: every `.metadata` must come from it."""

    def __init__(self) -> None:
        self.page = ProjectDetail(
            name="up",
            files=(DistFile("up-1.0-py3-none-any.whl", core_metadata={"sha256": "0" * 64}),),
            source="https://upstream.invalid/simple/",
        )
        self.files_asked: list[str] = []

    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        return ProjectList(())

    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        return self.page

    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        self.files_asked.append(filename)
        return UPSTREAM_METADATA


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return make_local_store(tmp_path / "data")


@pytest.fixture
async def chain(local: LocalStore, tmp_path: Path) -> AsyncIterator[MetadataRepository]:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme", "1.0", requires_dist=("attrs>=23",), description="Ünïcode ✓\n")
    build_sdist(dists, "acme", "1.0")
    assert (await import_directory(dists, local.sessions, local.store)).ok
    repository = MetadataRepository(LocalRepository(local.sessions, local.store), local.store)
    yield repository
    await repository.aclose()


def wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("acme-1.0.dist-info/METADATA")


@pytest.mark.anyio
async def test_metadata_is_the_wheels_own_bytes_with_the_advertised_hash(
    chain: MetadataRepository, tmp_path: Path
) -> None:
    expected = wheel_metadata(tmp_path / "dists" / "acme-1.0-py3-none-any.whl")
    page = await chain.get_project("acme", ANONYMOUS)

    served = await chain.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)

    assert isinstance(served, InlineFile)
    assert served.content == expected
    assert served.sha256 == hashlib.sha256(expected).hexdigest()
    assert page.files[0].core_metadata == {"sha256": served.sha256}
    assert served.content_type == METADATA_CONTENT_TYPE
    assert served.filename == "acme-1.0-py3-none-any.whl.metadata"
    again = await chain.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert again is served


@pytest.mark.anyio
async def test_other_files_and_pages_pass_through(chain: MetadataRepository) -> None:
    page = await chain.get_project("acme", ANONYMOUS)
    assert await chain.source.get_project("acme", ANONYMOUS) is page
    wheel = await chain.get_file("acme", "acme-1.0-py3-none-any.whl", ANONYMOUS)
    assert wheel.filename == "acme-1.0-py3-none-any.whl"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "filename",
    ["acme-1.0.tar.gz.metadata", "acme-2.0-py3-none-any.whl.metadata", ".metadata"],
)
async def test_metadata_of_files_without_one_is_not_found(
    chain: MetadataRepository, filename: str
) -> None:
    with pytest.raises(FileNotFound):
        await chain.get_file("acme", filename, ANONYMOUS)


@pytest.mark.anyio
async def test_damaged_stored_metadata_is_never_served(
    chain: MetadataRepository, local: LocalStore
) -> None:
    with local.sessions() as session:
        key = session.scalars(
            select(File.metadata_blob_key).where(File.metadata_blob_key.isnot(None))
        ).one()
    assert key is not None
    local.store.local_path(key).write_bytes(b"Name: tampered\n")
    with pytest.raises(PackyardError, match="does not match its sha256"):
        await chain.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)


@pytest.mark.anyio
async def test_wheels_from_other_sources_get_their_metadata_from_the_source(
    local: LocalStore,
) -> None:
    upstream = FakeUpstream()
    chain = MetadataRepository(upstream, local.store)
    served = await chain.get_file("up", "up-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert served is UPSTREAM_METADATA
    assert upstream.files_asked == ["up-1.0-py3-none-any.whl.metadata"]
    upstream.page = replace(upstream.page, files=())
    with pytest.raises(FileNotFound):
        await chain.get_file("up", "up-1.0-py3-none-any.whl.metadata", ANONYMOUS)


@pytest.mark.anyio
async def test_the_cache_stays_within_its_byte_budget(
    chain: MetadataRepository, local: LocalStore
) -> None:
    tiny = MetadataRepository(chain.source, local.store, cache_bytes=10)
    first = await tiny.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    second = await tiny.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert first is not second
    assert first == second


@pytest.mark.anyio
async def test_extracted_metadata_damaged_by_a_crash_is_extracted_again(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    upstream = MemoryRepository("pypi", {"demo": {wheel.name: wheel.read_bytes()}})
    store = FilesystemBlobStore(tmp_path / "blobs")
    first = MetadataRepository(upstream, store, remote=RemoteMetadataReader(store, sessions))
    served = await first.get_file("demo", wheel.name + ".metadata", ANONYMOUS)
    assert isinstance(served, InlineFile)
    (blob,) = (path for path in (tmp_path / "blobs").rglob("*.metadata") if path.is_file())
    blob.write_bytes(b"")  # written without fsync: a crash may leave it empty

    restarted = MetadataRepository(upstream, store, remote=RemoteMetadataReader(store, sessions))
    again = await restarted.get_file("demo", wheel.name + ".metadata", ANONYMOUS)
    assert isinstance(again, InlineFile)
    assert again.content == served.content
    assert blob.read_bytes() == served.content  # repaired
    assert upstream.files_asked == [wheel.name, wheel.name]
