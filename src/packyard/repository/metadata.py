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
has no metadata either. Wheels whose page does not advertise a metadata file
from this store (upstream wheels) are passed to the source unchanged:
`_foreign_metadata` is the seam where range-request extraction will go.

Content type: `text/plain; charset=utf-8`, as PyPI serves it: METADATA is
UTF-8 text (core metadata spec), and a browser then shows it instead of
downloading it. Clients only hash the bytes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping

from typing_extensions import override

from packyard.dists.metadata import MAX_METADATA_SIZE
from packyard.errors import FileNotFound, PackyardError
from packyard.model import (
    SOURCE_LOCAL,
    DistFile,
    InlineFile,
    ProjectDetail,
    RequestContext,
    Resource,
)
from packyard.repository.base import DelegatingRepository, IdentityMemo, Repository
from packyard.storage.base import BlobStore, blob_key

METADATA_SUFFIX = ".metadata"
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class MetadataRepository(DelegatingRepository):
    """Serves `<wheel>.metadata` (PEP 658) over any chain whose local pages advertise it."""

    def __init__(
        self, source: Repository, store: BlobStore, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        """`store` holds the in-house METADATA blobs; `cache_bytes` bounds the
        memory spent on metadata files already served."""
        super().__init__(source)
        self._store = store
        self._files_by_name: IdentityMemo[ProjectDetail, Mapping[str, DistFile]] = IdentityMemo(
            lambda page: {dist.filename: dist for dist in page.files}
        )
        self._cache: OrderedDict[str, InlineFile] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """A wheel's METADATA for `<wheel>.metadata`; any other file from the source.

        Raises:
            ProjectNotFound: no such project.
            FileNotFound: the project has no such wheel, or no metadata for it.
            UpstreamError, UpstreamUnavailable: the source's upstream failed.
            PackyardError: the stored METADATA does not match its recorded
                sha256 (a damaged store: a server fault).
            OSError: the METADATA blob is missing or unreadable (a server fault).
        """
        wheel = filename.removesuffix(METADATA_SUFFIX)
        if wheel == filename or not wheel.endswith(".whl"):
            return await self.source.get_file(name, filename, ctx)
        page = await self.source.get_project(name, ctx)
        dist = self._files_by_name(name, page).get(wheel)
        if dist is None:
            raise FileNotFound(name, filename)
        sha256 = _advertised_sha256(dist)
        if page.source == SOURCE_LOCAL and sha256 is not None:
            return await self._local_metadata(filename, sha256, dist)
        return await self._foreign_metadata(name, filename, page, dist, ctx)

    async def _foreign_metadata(
        self, name: str, filename: str, page: ProjectDetail, dist: DistFile, ctx: RequestContext
    ) -> Resource:
        """Metadata of a wheel this store does not hold: for now, whatever the source serves."""
        return await self.source.get_file(name, filename, ctx)

    async def _local_metadata(self, filename: str, sha256: str, dist: DistFile) -> InlineFile:
        cached = self._cache.get(filename)
        if cached is not None and cached.sha256 == sha256:
            self._cache.move_to_end(filename)
            return cached
        content = await self._read_blob(blob_key(sha256, filename))
        if hashlib.sha256(content).hexdigest() != sha256:
            raise PackyardError(f"The stored metadata of {filename!r} does not match its sha256.")
        served = InlineFile(
            filename=filename,
            content=content,
            sha256=sha256,
            content_type=METADATA_CONTENT_TYPE,
            modified=dist.upload_time,
        )
        self._remember(served)
        return served

    async def _read_blob(self, key: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in self._store.read(key, None):
            size += len(chunk)
            if size > MAX_METADATA_SIZE:
                raise PackyardError(f"The stored metadata blob {key!r} is larger than allowed.")
            chunks.append(chunk)
        return b"".join(chunks)

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
