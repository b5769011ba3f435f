"""PEP 658/714: the `<wheel>.metadata` file of every wheel, with the sha256 its page shows.

For a wheel of the in-house store whose page advertises `core-metadata`, the
exact METADATA bytes are read from the blob the importer (or the upload)
stored beside the wheel, at `blob_key(<metadata sha256>, "<wheel>.metadata")`,
so the wheel is never opened; they are checked against the advertised hash
and kept in a small in-memory cache (the key is content-addressed, so a cached
entry can never be stale). pip 26.3 compares these bytes with the wheel's own
METADATA (STANDARDS §1.14), which is why they are never re-serialised.

The page is asked of the source itself, so the source that served the page
also serves its metadata (DESIGN §2) and a file hidden by a component below
has no metadata either.

Wheels of other sources (upstreams) get a metadata file too, whether their
index offers one or not:

- if the upstream advertises `core-metadata`, its page and its `.metadata`
  file are passed through unchanged;
- otherwise the page is rewritten to advertise `core-metadata` for every
  wheel: `{"sha256": hex}` once the METADATA has been extracted, `true` before
  (the Simple Repository API allows `true` without a hash; pip and uv then
  fetch `.metadata` without checking a hash). The `.metadata` file is read
  from the wheel with range requests by `RemoteMetadataReader`, once per
  wheel ever, and kept in the blob store; with `read_ahead`, that of the
  newest release is read as soon as its page passes (`read_ahead.py`).

Content type: `text/plain; charset=utf-8`, as PyPI serves it: METADATA is
UTF-8 text (core metadata spec), and a browser then shows it instead of
downloading it. Clients only hash the bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace

from typing_extensions import override

from packyard.errors import FileNotFound
from packyard.model import (
    ANONYMOUS,
    SOURCE_LOCAL,
    DistFile,
    InlineFile,
    ProjectDetail,
    RequestContext,
    Resource,
)
from packyard.repository.base import DelegatingRepository, IdentityMemo, Repository
from packyard.repository.read_ahead import ReadAhead
from packyard.repository.remote_metadata import (
    DamagedBlob,
    ExtractedMetadata,
    RemoteMetadataReader,
    read_metadata_blob,
)
from packyard.storage.base import BlobStore, blob_key

METADATA_SUFFIX = ".metadata"
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class MetadataRepository(DelegatingRepository):
    """Serves `<wheel>.metadata` (PEP 658) for every wheel of the chain, local or upstream."""

    def __init__(
        self,
        source: Repository,
        store: BlobStore,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        remote: RemoteMetadataReader | None = None,
        *,
        read_ahead: bool = False,
        follow_dependencies: bool = False,
    ) -> None:
        """`store` holds the METADATA blobs; `cache_bytes` bounds the memory spent
        on metadata files already served; `remote` reads and keeps the METADATA
        of upstream wheels (by default with an index in memory only);
        `read_ahead` reads that of an upstream page's newest release as soon
        as the page passes, and `follow_dependencies` then opens the pages of
        the projects it requires (`read_ahead.py`)."""
        super().__init__(source)
        self._store = store
        self._remote = remote if remote is not None else RemoteMetadataReader(store)
        self._read_ahead = (
            ReadAhead(self._read_ahead_one, visit=self._visit if follow_dependencies else None)
            if read_ahead
            else None
        )
        self._files_by_name: IdentityMemo[ProjectDetail, Mapping[str, DistFile]] = IdentityMemo(
            lambda page: {dist.filename: dist for dist in page.files}
        )
        # name -> (source page, extraction generation, advertised page). Not an
        # IdentityMemo: the output also depends on what has been extracted since.
        self._advertised: dict[str, tuple[ProjectDetail, int, ProjectDetail]] = {}
        self._cache: OrderedDict[str, InlineFile] = OrderedDict()
        # The source of each page read ahead: its wheels' metadata is keyed by it.
        self._read_ahead_sources: dict[str, str] = {}
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The source's page; an upstream page advertises metadata for every wheel.

        The same source page gives the same object back until a wheel of the
        project gains extracted metadata (its hash then appears in the page).

        Raises:
            ProjectNotFound, UpstreamError, UpstreamUnavailable: from the source.
        """
        page = await self.source.get_project(name, ctx)
        if page.source == SOURCE_LOCAL:
            return page
        generation = self._remote.generation(name)
        hit = self._advertised.get(name)
        if hit is not None and hit[0] is page and hit[1] == generation:
            return hit[2]
        advertised = self._advertise(page)
        if self._read_ahead is not None and (hit is None or hit[0] is not page):
            self._read_ahead_sources[name] = page.source
            self._read_ahead.consider(name, self._unextracted(page))
        self._advertised[name] = (page, generation, advertised)
        return advertised

    def _unextracted(self, page: ProjectDetail) -> list[DistFile]:
        """The page's wheels whose METADATA only an extraction can give."""
        return [
            dist
            for dist in page.files
            if dist.filename.endswith(".whl")
            and not dist.core_metadata
            and self._remote.lookup(dist, page.source) is None
        ]

    def _advertise(self, page: ProjectDetail) -> ProjectDetail:
        """PEP 658/714: `core-metadata` on every wheel that has none from its upstream."""
        files = tuple(
            replace(dist, core_metadata=self._remote_core_metadata(dist, page.source))
            if dist.filename.endswith(".whl") and not dist.core_metadata
            else dist
            for dist in page.files
        )
        if all(new is old for new, old in zip(files, page.files, strict=True)):
            return page
        return replace(page, files=files)

    def _remote_core_metadata(self, dist: DistFile, source: str) -> bool | Mapping[str, str]:
        known = self._remote.lookup(dist, source)
        return True if known is None else {"sha256": known.sha256}

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """A wheel's METADATA for `<wheel>.metadata`; any other file from the source.

        Raises:
            ProjectNotFound: no such project.
            FileNotFound: the project has no such wheel, or no metadata for it.
            FileDenied: a component below refuses the wheel (and so its metadata).
            UpstreamError: the source's upstream failed, or its wheel is not a
                readable wheel (a 502).
            UpstreamUnavailable: the source's upstream could not be reached.
            InvalidDistribution: a wheel of a non-local page, held in this
                server's storage, is broken.
            PackyardError: the stored METADATA does not match its recorded
                sha256 (a damaged store: a server fault).
            OSError: the METADATA blob is missing or unreadable, or could not
                be written (a server fault).
        """
        wheel = filename.removesuffix(METADATA_SUFFIX)
        if wheel == filename or not wheel.endswith(".whl"):
            return await self.source.get_file(name, filename, ctx)
        page = await self.source.get_project(name, ctx)
        dist = self._files_by_name(name, page).get(wheel)
        if dist is None:
            # Not on the page, so not served; but a component below that refuses
            # the wheel (the advisory policy `deny`) raises its own reason here.
            await self.source.get_file(name, filename, ctx)
            raise FileNotFound(name, filename)
        sha256 = _advertised_sha256(dist)
        if page.source == SOURCE_LOCAL and sha256 is not None:
            return await self._local_metadata(filename, sha256, dist)
        return await self._foreign_metadata(name, filename, page, dist, ctx)

    async def _foreign_metadata(
        self, name: str, filename: str, page: ProjectDetail, dist: DistFile, ctx: RequestContext
    ) -> Resource:
        """Metadata of a wheel this store does not hold.

        The upstream's own `.metadata` when it advertises one (pass-through);
        else the METADATA kept from an earlier extraction, else extracted now.
        A local wheel without recorded metadata has none.
        """
        if dist.core_metadata or page.source == SOURCE_LOCAL:
            return await self.source.get_file(name, filename, ctx)
        known = self._remote.lookup(dist, page.source)
        if known is not None:
            try:
                return await self._stored_metadata(filename, known, dist)
            except (FileNotFoundError, DamagedBlob):
                pass  # removed, or lost in a crash (it is not durable): extract it again
        return await self._extract(name, dist, page.source, ctx)

    async def _extract(
        self,
        name: str,
        dist: DistFile,
        source: str,
        ctx: RequestContext = ANONYMOUS,
        *,
        download: bool = True,
    ) -> InlineFile:
        """Read the METADATA of the wheel `dist` of the upstream `source` (once,
        however many ask), and keep it in memory too: the client that asks next
        is served from there. `download` False: never by reading the whole
        wheel (see `RemoteMetadataReader`)."""
        resource = await self.source.get_file(name, dist.filename, ctx)
        known, content = await self._remote.extract(
            name, dist, resource, download=download, source=source
        )
        served = self._inline(dist.filename + METADATA_SUFFIX, content, known.sha256, dist)
        self._remember(served)
        return served

    async def _read_ahead_one(self, name: str, dist: DistFile) -> bytes:
        """A read-ahead reads ranges only: never a whole wheel no client asked for."""
        source = self._read_ahead_sources.get(name, "")
        return (await self._extract(name, dist, source, download=False)).content

    async def _visit(self, name: str) -> None:
        """A dependency's page, asked of the whole chain as a client would (in-house first)."""
        await self.get_project(name, ANONYMOUS)

    async def settle(self) -> None:
        """Wait until the metadata read ahead so far is read (or failed)."""
        if self._read_ahead is not None:
            await self._read_ahead.settle()

    @override
    async def aclose(self) -> None:
        if self._read_ahead is not None:
            await self._read_ahead.aclose()
        await super().aclose()

    async def _local_metadata(self, filename: str, sha256: str, dist: DistFile) -> InlineFile:
        key = blob_key(sha256, filename)
        return await self._stored_metadata(filename, ExtractedMetadata(sha256, key), dist)

    async def _stored_metadata(
        self, filename: str, stored: ExtractedMetadata, dist: DistFile
    ) -> InlineFile:
        cached = self._cache.get(filename)
        if cached is not None and cached.sha256 == stored.sha256:
            self._cache.move_to_end(filename)
            return cached
        content = await read_metadata_blob(self._store, stored.key, stored.sha256)
        served = self._inline(filename, content, stored.sha256, dist)
        self._remember(served)
        return served

    @staticmethod
    def _inline(filename: str, content: bytes, sha256: str, dist: DistFile) -> InlineFile:
        return InlineFile(
            filename=filename,
            content=content,
            sha256=sha256,
            content_type=METADATA_CONTENT_TYPE,
            modified=dist.upload_time,
        )

    def _remember(self, served: InlineFile) -> None:
        previous = self._cache.pop(served.filename, None)
        if previous is not None:
            self._cached_bytes -= len(previous.content)
        self._cache[served.filename] = served
        self._cached_bytes += len(served.content)
        while self._cached_bytes > self._cache_bytes and self._cache:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted.content)


def _advertised_sha256(dist: DistFile) -> str | None:
    if isinstance(dist.core_metadata, Mapping):
        return dist.core_metadata.get("sha256")
    return None
