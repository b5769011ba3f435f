"""RemoteMetadataReader and MetadataRepository over upstream wheels without `.metadata`.

The upstream is a fake index served on 127.0.0.1 (`tests/unit/upstream_server.py`)
behind the real `UpstreamOpener` and `UpstreamRepository`; it honours Range
or, when told to, answers every request with the whole file, as some servers do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import UpstreamMetadata
from packyard.dists.remote_zip import TAIL_SIZE
from packyard.errors import UpstreamError
from packyard.model import ANONYMOUS, DistFile, InlineFile, RemoteFile, StoredFile
from packyard.repository.metadata import METADATA_CONTENT_TYPE, MetadataRepository
from packyard.repository.remote_metadata import (
    ALIGNMENT,
    RANGE_RETRY_SECONDS,
    ExtractedMetadata,
    RangesUnavailable,
    RemoteMetadataReader,
    wheel_identity,
)
from packyard.repository.upstream import UpstreamRepository
from packyard.repository.upstream_http import UpstreamClient
from packyard.repository.upstream_opener import UpstreamOpener
from packyard.settings import UpstreamSettings
from packyard.storage.filesystem import FilesystemBlobStore
from tests.builders import build_sdist, build_wheel
from tests.unit.upstream_server import Servers, response, streamed

pytestmark = pytest.mark.anyio

JSON = "application/vnd.pypi.simple.v1+json"
CHUNK = 65536


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with Servers() as servers:
        yield servers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Index:
    """A fake upstream index of `files`; counts file requests and the bytes it sends.

    Served on 127.0.0.1 once `start`ed; bodies go out in 64 KiB writes, without
    a Content-Length (chunked).
    """

    def __init__(self, files: list[Path], *, ranges: bool = True, sizes: bool = True) -> None:
        self.files = {path.name: path.read_bytes() for path in files}
        self.ranges = ranges
        self.sizes = sizes
        self.advertised: dict[str, str] = {}  # filename -> sha256 of its .metadata
        self.file_requests: list[str | None] = []  # the Range header of each
        self.sent = 0
        self.url = ""

    async def start(self, servers: Servers) -> Index:
        self._servers = servers
        self.url = (await servers.start(self.handle)).url
        self.opener = UpstreamOpener(self.client(), "up")
        return self

    @property
    def base(self) -> str:
        return self.url + "/simple/"

    @property
    def files_url(self) -> str:
        return self.url + "/files/"

    def client(self) -> UpstreamClient:
        return self._servers.client(UpstreamSettings(url=self.base, name="up"))

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        await asyncio.sleep(0.001)  # a slower network round trip: lets concurrent callers meet
        path = request.path
        if path.startswith("/simple/"):
            return response(self.page(), headers={"Content-Type": JSON})
        filename = path.rsplit("/", 1)[1]
        self.file_requests.append(request.headers.get("Range"))
        if filename.endswith(".metadata"):
            return await streamed(request, b"upstream metadata\n", chunk=CHUNK)
        return await self.file(request, self.files[filename], request.headers.get("Range"))

    async def file(
        self, request: web.BaseRequest, data: bytes, header: str | None
    ) -> web.StreamResponse:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", header or "")
        if match is None or not self.ranges:
            self.sent += len(data)
            return await streamed(request, data, chunk=CHUNK)
        start, end = int(match[1]), min(int(match[2]), len(data) - 1)
        self.sent += end - start + 1
        content_range = f"bytes {start}-{end}/{len(data)}"
        return await streamed(
            request,
            data[start : end + 1],
            status=206,
            headers={"Content-Range": content_range},
            chunk=CHUNK,
        )

    def page(self) -> bytes:
        files = []
        for filename, data in self.files.items():
            entry: dict[str, object] = {
                "filename": filename,
                "url": self.files_url + filename,
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            }
            if self.sizes:
                entry["size"] = len(data)
            if filename in self.advertised:
                entry["core-metadata"] = {"sha256": self.advertised[filename]}
            files.append(entry)
        return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": files}).encode()

    def remote_file(self, filename: str, *, sized: bool = True, sha256: bool = True) -> RemoteFile:
        data = self.files[filename]
        return RemoteFile(
            filename=filename,
            url=self.files_url + filename,
            opener=self.opener,
            upstream="up",
            sha256=hashlib.sha256(data).hexdigest() if sha256 else None,
            size=len(data) if sized else None,
        )


def dist_of(remote: RemoteFile) -> DistFile:
    hashes = {"sha256": remote.sha256} if remote.sha256 else {}
    return DistFile(remote.filename, url=remote.url, hashes=hashes, size=remote.size)


def metadata_in(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    folder = tmp_path / "dists"
    folder.mkdir()
    return folder


@pytest.fixture
def big_wheel(dists: Path) -> Path:
    """A 4 MB wheel: a large random member, then the dist-info."""
    noise = {"demo/noise.bin": os.urandom(4 * 1024 * 1024)}
    return build_wheel(dists, "demo", "1.0", requires_dist=("attrs",), extra_files=noise)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(UpstreamMetadata)) or 0


async def test_metadata_is_read_by_ranges_stored_and_found_after_a_restart(
    servers: Servers,
    big_wheel: Path,
    store: FilesystemBlobStore,
    sessions: sessionmaker[Session],
) -> None:
    index = await Index([big_wheel]).start(servers)
    remote = index.remote_file(big_wheel.name)
    reader = RemoteMetadataReader(store, sessions)

    extracted, content = await reader.extract("demo", dist_of(remote), remote)

    assert content == metadata_in(big_wheel)
    assert extracted.sha256 == hashlib.sha256(content).hexdigest()
    assert all(header is not None for header in index.file_requests)
    assert index.sent < 100_000
    assert store.local_path(extracted.key).read_bytes() == content
    restarted = RemoteMetadataReader(store, sessions)
    # Known at once: pages show its hash.
    assert restarted.lookup(dist_of(remote), remote.upstream) == extracted
    assert restarted.generation("demo") == 1


async def test_without_a_size_the_first_byte_is_asked_for_the_size(
    servers: Servers, big_wheel: Path, store: FilesystemBlobStore
) -> None:
    index = await Index([big_wheel]).start(servers)
    remote = index.remote_file(big_wheel.name, sized=False)
    _, content = await RemoteMetadataReader(store).extract("demo", dist_of(remote), remote)
    assert content == metadata_in(big_wheel)
    # The dist-info is written last: the end records, the central directory
    # and METADATA are all in the one read of the tail, which starts on a page.
    size = len(index.files[big_wheel.name])
    tail_start = size - TAIL_SIZE - (size - TAIL_SIZE) % ALIGNMENT
    assert index.file_requests == ["bytes=0-0", f"bytes={tail_start}-{size - 1}"]
    assert index.sent < 100_000


async def test_an_upstream_that_ignores_ranges_gets_one_full_download(
    servers: Servers, big_wheel: Path, dists: Path, store: FilesystemBlobStore, tmp_path: Path
) -> None:
    other = build_wheel(dists, "other", "2.0")
    index = await Index([big_wheel, other], ranges=False).start(servers)
    clock = Clock()
    spool = tmp_path / "empty-data-dir" / "spool"  # made when first needed
    reader = RemoteMetadataReader(store, clock=clock, temp_dir=spool)

    remote = index.remote_file(big_wheel.name)
    _, content = await reader.extract("demo", dist_of(remote), remote)
    assert content == metadata_in(big_wheel)
    # The range request answered with 200 is abandoned, then one whole GET.
    assert index.file_requests == [index.file_requests[0], None]
    assert list(spool.iterdir()) == []  # the whole wheel went through it, and is gone

    index.file_requests.clear()
    second = index.remote_file(other.name)
    await reader.extract("other", dist_of(second), second)
    assert index.file_requests == [None]  # no more range attempts at this upstream

    index.file_requests.clear()
    clock.now += RANGE_RETRY_SECONDS
    third = index.remote_file(other.name, sha256=False)
    await reader.extract("other", dist_of(third), third)
    assert len(index.file_requests) == 2
    assert index.file_requests[0] is not None  # ranges are tried again


async def test_without_download_an_upstream_that_ignores_ranges_is_not_read_whole(
    servers: Servers, big_wheel: Path, store: FilesystemBlobStore
) -> None:
    """What a read-ahead asks for: ranges or nothing, never a whole wheel."""
    index = await Index([big_wheel], ranges=False).start(servers)
    remote = index.remote_file(big_wheel.name)
    reader = RemoteMetadataReader(store)
    with pytest.raises(RangesUnavailable, match="does not serve byte ranges"):
        await reader.extract("demo", dist_of(remote), remote, download=False)
    assert len(index.file_requests) == 1  # the range request, abandoned
    assert index.file_requests[0] is not None
    with pytest.raises(RangesUnavailable):  # known now: not even asked
        await reader.extract("demo", dist_of(remote), remote, download=False)
    assert len(index.file_requests) == 1
    assert reader.lookup(dist_of(remote), remote.upstream) is None


async def test_a_client_that_joins_a_read_ahead_on_such_an_upstream_still_gets_metadata(
    servers: Servers, big_wheel: Path, store: FilesystemBlobStore
) -> None:
    index = await Index([big_wheel], ranges=False).start(servers)
    remote = index.remote_file(big_wheel.name)
    reader = RemoteMetadataReader(store)
    outcomes: dict[str, object] = {}

    async def read_ahead() -> None:
        try:
            await reader.extract("demo", dist_of(remote), remote, download=False)
        except RangesUnavailable as exc:
            outcomes["read-ahead"] = exc

    async def client() -> None:
        outcomes["client"] = (await reader.extract("demo", dist_of(remote), remote))[1]

    async with anyio.create_task_group() as group:
        group.start_soon(read_ahead)
        await anyio.lowlevel.checkpoint()  # the read-ahead's flight first; the client joins it
        group.start_soon(client)
    assert isinstance(outcomes["read-ahead"], RangesUnavailable)
    assert outcomes["client"] == metadata_in(big_wheel)
    assert index.file_requests[-1] is None  # the client read the wheel whole


async def test_a_full_download_must_match_the_page_sha256(
    servers: Servers,
    big_wheel: Path,
    store: FilesystemBlobStore,
    sessions: sessionmaker[Session],
) -> None:
    index = await Index([big_wheel], ranges=False).start(servers)
    remote = index.remote_file(big_wheel.name)
    lying = replace(remote, sha256="0" * 64)
    reader = RemoteMetadataReader(store, sessions)
    with pytest.raises(UpstreamError, match="does not match its sha256"):
        await reader.extract("demo", dist_of(lying), lying)
    assert reader.lookup(dist_of(lying), lying.upstream) is None
    assert rows(sessions) == 0


@pytest.mark.parametrize("ranges", [True, False])
async def test_a_broken_upstream_wheel_is_an_upstream_error(
    servers: Servers, dists: Path, store: FilesystemBlobStore, ranges: bool
) -> None:
    broken = dists / "demo-1.0-py3-none-any.whl"
    broken.write_bytes(os.urandom(200_000))
    index = await Index([broken], ranges=ranges).start(servers)
    remote = index.remote_file(broken.name)
    with pytest.raises(UpstreamError, match="unreadable wheel"):
        await RemoteMetadataReader(store).extract("demo", dist_of(remote), remote)


async def test_metadata_that_disagrees_with_the_filename_is_refused(
    servers: Servers, dists: Path, store: FilesystemBlobStore
) -> None:
    wheel = build_wheel(dists, "demo", "1.0", metadata="Metadata-Version: 2.1\nName: demo\n")
    index = await Index([wheel]).start(servers)
    remote = index.remote_file(wheel.name)
    with pytest.raises(UpstreamError, match="version"):
        await RemoteMetadataReader(store).extract("demo", dist_of(remote), remote)


async def test_concurrent_requests_for_one_wheel_share_one_fetch(
    servers: Servers, big_wheel: Path, store: FilesystemBlobStore
) -> None:
    index = await Index([big_wheel]).start(servers)
    remote = index.remote_file(big_wheel.name)
    reader = RemoteMetadataReader(store)
    results: list[tuple[ExtractedMetadata, bytes]] = []

    async def extract() -> None:
        results.append(await reader.extract("demo", dist_of(remote), remote))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(extract)

    assert len(results) == 10
    assert len({result[0] for result in results}) == 1
    single = await Index([big_wheel]).start(servers)
    fresh = single.remote_file(big_wheel.name)
    await RemoteMetadataReader(FilesystemBlobStore(store.root / "other")).extract(
        "demo", dist_of(fresh), fresh
    )
    assert len(index.file_requests) == len(single.file_requests)


async def test_a_wheel_in_our_own_storage_is_read_by_ranges_too(
    big_wheel: Path, store: FilesystemBlobStore
) -> None:
    data = await anyio.Path(big_wheel).read_bytes()
    async with store.writer(big_wheel.name) as writer:
        await writer.write(data)
        blob = await writer.commit()
    stored = StoredFile(big_wheel.name, blob.key, blob.size, blob.sha256, store)
    dist = DistFile(big_wheel.name, hashes={"sha256": blob.sha256})
    _, content = await RemoteMetadataReader(store).extract("demo", dist, stored)
    assert content == metadata_in(big_wheel)


async def test_a_second_replica_never_asks_the_upstream_for_what_the_first_extracted(
    servers: Servers,
    big_wheel: Path,
    dists: Path,
    tmp_path: Path,
    sessions: sessionmaker[Session],
) -> None:
    """Two replicas: one database, one blob store (S3 in production), each its own
    empty data directory. The second was started before the first extracted
    anything, so its memory knows nothing: the table is asked before the upstream."""
    other = build_wheel(dists, "other", "2.0")
    index = await Index([big_wheel, other]).start(servers)
    shared = FilesystemBlobStore(tmp_path / "bucket")
    data_dirs = [tmp_path / "first", tmp_path / "second"]
    for folder in data_dirs:
        folder.mkdir()
    first = RemoteMetadataReader(shared, sessions, temp_dir=data_dirs[0])
    second = RemoteMetadataReader(shared, sessions, temp_dir=data_dirs[1])
    remote = index.remote_file(big_wheel.name)
    extracted, content = await first.extract("demo", dist_of(remote), remote)
    asked = len(index.file_requests)
    assert asked > 0

    assert second.lookup(dist_of(remote), remote.upstream) is None  # not in its memory...
    assert await second.extract("demo", dist_of(remote), remote) == (extracted, content)
    # ...until the table told it:
    assert second.lookup(dist_of(remote), remote.upstream) == extracted
    assert second.generation("demo") == 1
    third = RemoteMetadataReader(shared, sessions)  # started afterwards: knows it at once
    assert third.lookup(dist_of(remote), remote.upstream) == extracted
    assert len(index.file_requests) == asked  # the upstream was asked by the first only

    # And the other way round: what the second extracts, the first finds.
    wheel = index.remote_file(other.name)
    await second.extract("other", dist_of(wheel), wheel)
    asked = len(index.file_requests)
    assert (await first.extract("other", dist_of(wheel), wheel))[1] == metadata_in(other)
    assert len(index.file_requests) == asked
    assert rows(sessions) == 2
    assert [list(folder.iterdir()) for folder in data_dirs] == [[], []]


async def test_replicas_extracting_one_wheel_at_once_both_succeed(
    servers: Servers,
    big_wheel: Path,
    tmp_path: Path,
    sessions: sessionmaker[Session],
) -> None:
    """Neither knows of the other's extraction: both insert the row, the second is ignored."""
    index = await Index([big_wheel]).start(servers)
    shared = FilesystemBlobStore(tmp_path / "bucket")
    replicas = [RemoteMetadataReader(shared, sessions) for _ in range(4)]
    remote = index.remote_file(big_wheel.name)
    results: list[tuple[ExtractedMetadata, bytes]] = []

    async def extract(reader: RemoteMetadataReader) -> None:
        results.append(await reader.extract("demo", dist_of(remote), remote))

    async with anyio.create_task_group() as group:
        for reader in replicas:
            group.start_soon(extract, reader)
    assert len(set(results)) == 1
    assert results[0][1] == metadata_in(big_wheel)
    assert rows(sessions) == 1


def test_wheels_are_known_by_upstream_url_sha256_and_size_never_by_their_url() -> None:
    dist = DistFile("a-1-py3-none-any.whl", url="https://u:secret@x/a.whl", hashes={"sha256": "ab"})
    identity = wheel_identity(dist, "pypi")
    assert "secret" not in identity
    # The same declared sha256 elsewhere is another wheel: a copy read by ranges
    # from one upstream never answers for another.
    others = [
        wheel_identity(dist, "mirror"),
        wheel_identity(dataclasses.replace(dist, url="https://y/a.whl"), "pypi"),
        wheel_identity(dataclasses.replace(dist, size=10), "pypi"),
        wheel_identity(dataclasses.replace(dist, hashes={"sha256": "cd"}), "pypi"),
    ]
    assert identity not in others
    assert len(set(others)) == len(others)


# --- MetadataRepository over an upstream ----------------------------------------------


def chain_over(
    index: Index, store: FilesystemBlobStore, sessions: sessionmaker[Session] | None = None
) -> MetadataRepository:
    settings = UpstreamSettings(url=index.base, name="up", page_ttl=3600)
    upstream = UpstreamRepository(settings, index.client())
    return MetadataRepository(upstream, store, remote=RemoteMetadataReader(store, sessions))


async def test_upstream_pages_advertise_metadata_for_every_wheel(
    servers: Servers, big_wheel: Path, dists: Path, store: FilesystemBlobStore, tmp_path: Path
) -> None:
    sdist = build_sdist(dists, "demo", "1.0")
    advertised = build_wheel(dists, "demo", "0.9")
    index = await Index([big_wheel, sdist, advertised]).start(servers)
    index.advertised[advertised.name] = "e" * 64
    chain = chain_over(index, store)

    page = await chain.get_project("demo", ANONYMOUS)

    by_name = {dist.filename: dist.core_metadata for dist in page.files}
    assert by_name == {
        big_wheel.name: True,
        sdist.name: False,
        advertised.name: {"sha256": "e" * 64},
    }
    assert await chain.get_project("demo", ANONYMOUS) is page

    served = await chain.get_file("demo", big_wheel.name + ".metadata", ANONYMOUS)

    assert isinstance(served, InlineFile)
    assert served.content == metadata_in(big_wheel)
    assert served.sha256 == hashlib.sha256(served.content).hexdigest()
    assert served.content_type == METADATA_CONTENT_TYPE
    after = await chain.get_project("demo", ANONYMOUS)
    assert after is not page
    assert after.files[0].core_metadata == {"sha256": served.sha256}
    assert await chain.get_project("demo", ANONYMOUS) is after


async def test_an_upstreams_own_metadata_file_is_passed_through(
    servers: Servers, dists: Path, store: FilesystemBlobStore, tmp_path: Path
) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    index = await Index([wheel]).start(servers)
    index.advertised[wheel.name] = "e" * 64
    chain = chain_over(index, store)
    served = await chain.get_file("demo", wheel.name + ".metadata", ANONYMOUS)
    assert isinstance(served, RemoteFile)
    assert served.url == index.files_url + wheel.name + ".metadata"
    assert served.sha256 == "e" * 64


async def test_extracted_metadata_is_served_from_the_store_after_a_restart(
    servers: Servers,
    big_wheel: Path,
    store: FilesystemBlobStore,
    sessions: sessionmaker[Session],
) -> None:
    index = await Index([big_wheel]).start(servers)
    first = await chain_over(index, store, sessions).get_file(
        "demo", big_wheel.name + ".metadata", ANONYMOUS
    )
    requests = len(index.file_requests)

    restarted = chain_over(index, store, sessions)
    page = await restarted.get_project("demo", ANONYMOUS)
    served = await restarted.get_file("demo", big_wheel.name + ".metadata", ANONYMOUS)

    assert isinstance(first, InlineFile)
    assert page.files[0].core_metadata == {"sha256": first.sha256}
    assert served == first
    assert len(index.file_requests) == requests


async def test_a_lost_blob_is_extracted_again(
    servers: Servers,
    big_wheel: Path,
    store: FilesystemBlobStore,
    sessions: sessionmaker[Session],
) -> None:
    index = await Index([big_wheel]).start(servers)
    chain = chain_over(index, store, sessions)
    served = await chain.get_file("demo", big_wheel.name + ".metadata", ANONYMOUS)
    assert isinstance(served, InlineFile)
    for path in store.root.rglob("*.metadata"):
        path.unlink()
    restarted = chain_over(index, store, sessions)
    again = await restarted.get_file("demo", big_wheel.name + ".metadata", ANONYMOUS)
    assert again == served
