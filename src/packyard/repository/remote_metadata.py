"""`RemoteMetadataReader`: METADATA of wheels this server does not hold, read once, kept for good.

PEP 658 lets an index serve `<wheel>.metadata` so that installers resolve
without downloading wheels. For an upstream wheel whose index offers none,
the METADATA member is read with HTTP range requests (`dists/remote_zip.py`):
a few tens of kilobytes, even of a 190 MB wheel (DESIGN §2).

Some upstreams ignore `Range` and answer 200 with the whole file; the opener
then still yields only the bytes asked for, but by reading everything before
them. The reader notices (`RemoteBody.ranged`), abandons that response, and
makes ONE full download into a temporary file, bounded by the file's size and
checked against its sha256, from which `dists/metadata.py` reads METADATA.
That upstream is then read whole, without trying ranges, for
`RANGE_RETRY_SECONDS` (as uv stops asking an index for ranges).

Extracted bytes go into the blob store under their content-addressed key,
and a small index, `identity of the wheel -> (sha256, key)`, into the
database table `upstream_metadata`, so each wheel is read once, ever, by
whichever replica meets it first: a replica started with an empty data
directory finds what the others extracted (DESIGN §3). The identity is a
hash of (upstream, URL, declared sha256, size): METADATA read by ranges is
not verified (a part of a file cannot be), so a copy read from one upstream's
wheel must never answer for another's, even one declaring the same sha256.
It is verified later: when the whole wheel is downloaded (`check`, run by
the file cache before the download's last byte is sent), its real METADATA
is compared with the copy; if they differ, the copy is discarded (its row
and its blob), an `upstream-metadata-mismatch` event is logged, and the
download is refused. The index is
also kept in memory (filled from the table when the reader is built, so pages
advertise known hashes at once); a miss there is looked up in the table, in a
worker thread, before anything is fetched. Two replicas extracting the same
wheel at once insert the same row: the second insert is ignored (`ON CONFLICT
DO NOTHING`). Concurrent requests for the same wheel in one process share one
fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import anyio
import anyio.to_thread
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import UpstreamMetadata, upsert
from packyard.dists.filenames import DistFilename, parse_filename
from packyard.dists.metadata import MAX_METADATA_SIZE, parse_core_metadata, read_core_metadata
from packyard.dists.remote_zip import RangeReader, read_wheel_metadata
from packyard.errors import InvalidDistribution, PackyardError, UpstreamError
from packyard.flights import Flights
from packyard.model import ByteRange, DistFile, InlineFile, RemoteFile, Resource, StoredFile
from packyard.repository import upstream_events
from packyard.repository.file_cache import parts_opener
from packyard.storage.base import BlobStore
from packyard.storage.full import storing

logger = logging.getLogger(__name__)
RANGE_RETRY_SECONDS = 600.0
ALIGNMENT = 4096  # range reads start on a page boundary: see `_read_ranges`
MAX_DOWNLOAD_BYTES = 16 * 1024**3  # when neither the page nor the upstream gives a size


@dataclass(frozen=True, slots=True)
class ExtractedMetadata:
    """Where the METADATA of one wheel is kept: its sha256 and its blob key."""

    sha256: str
    key: str


def wheel_identity(dist: DistFile, source: str = "") -> str:
    """The index key of the wheel `dist` of the source labelled `source`: a hash of
    (upstream, URL, declared sha256, size), never the URL itself (an upstream URL
    may carry credentials)."""
    return _identity(source, dist.url, dist.sha256, dist.size)


def download_identity(resource: RemoteFile) -> str:
    """`wheel_identity` of the wheel an upstream file is (as `upstream.remote_file` made it)."""
    return _identity(resource.upstream, resource.url, resource.sha256, resource.size)


def _identity(source: str, url: str, sha256: str | None, size: int | None) -> str:
    key = json.dumps([source, url, (sha256 or "").lower(), size])
    return "wheel:" + hashlib.sha256(key.encode()).hexdigest()


class DamagedBlob(PackyardError):
    """A stored metadata blob is not what was stored (too large, or another sha256)."""


async def read_metadata_blob(store: BlobStore, key: str, sha256: str) -> bytes:
    """The bytes of the metadata blob `key`, checked against `sha256`.

    Raises:
        DamagedBlob: the blob is larger than `MAX_METADATA_SIZE` or does not
            match `sha256` (a damaged store: a server fault, unless the blob
            was extracted, not durable, and can be extracted again).
        FileNotFoundError: there is no such blob.
        OSError: the blob could not be read.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in store.read(key, None):
        size += len(chunk)
        if size > MAX_METADATA_SIZE:
            raise DamagedBlob(f"The stored metadata blob {key!r} is larger than allowed.")
        chunks.append(chunk)
    content = b"".join(chunks)
    if hashlib.sha256(content).hexdigest() != sha256:
        raise DamagedBlob(f"The stored metadata {key!r} does not match its sha256.")
    return content


class MetadataIndex:
    """`wheel identity -> ExtractedMetadata`: a memo in memory over the table `upstream_metadata`.

    `sessions` None keeps the index in memory only (the blobs still persist).
    The memo only grows: a row is never changed once written (the key is
    content-addressed), so what it remembers can't be stale.
    """

    def __init__(self, sessions: sessionmaker[Session] | None) -> None:
        """Fills the memo from the table (one query, at startup). A table that
        cannot be read yet (a replica started before `packyard migrate`, a
        database that is down) is read on the first `find` instead."""
        self._sessions = sessions
        self._entries: dict[str, ExtractedMetadata] = {}
        self._generations: dict[str, int] = {}
        self._loaded = sessions is None
        try:
            self._load_all()
        except SQLAlchemyError as exc:
            logger.warning("the upstream metadata index is read later: %s", exc)

    def _load_all(self) -> None:
        if self._loaded or self._sessions is None:
            return
        with self._sessions() as session:
            rows = session.execute(
                select(
                    UpstreamMetadata.project,
                    UpstreamMetadata.identity,
                    UpstreamMetadata.sha256,
                    UpstreamMetadata.blob_key,
                )
            ).all()
        for project, identity, sha256, key in rows:
            self._remember(project, identity, ExtractedMetadata(sha256, key))
        self._loaded = True

    def get(self, identity: str) -> ExtractedMetadata | None:
        """What the memo knows of `identity` (no database access: for the event loop)."""
        return self._entries.get(identity)

    def generation(self, project: str) -> int:
        """A number that changes whenever a wheel of `project` gains an entry here."""
        return self._generations.get(project, 0)

    async def find(self, project: str, identity: str) -> ExtractedMetadata | None:
        """The entry of `identity`, from the memo, else from the table (another
        replica may have written it), in a worker thread.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the table cannot be read.
        """
        known = self._entries.get(identity)
        if known is not None or self._sessions is None:
            return known
        if not self._loaded:
            await anyio.to_thread.run_sync(self._load_all)
            known = self._entries.get(identity)
            if known is not None:
                return known
        row = await anyio.to_thread.run_sync(self._select, self._sessions, identity)
        if row is not None:
            self._remember(project, identity, row)
        return row

    async def add(self, project: str, identity: str, entry: ExtractedMetadata) -> None:
        """Record `entry`, in memory and in the table (in a worker thread).

        A row that another replica inserted first is left as it is: its key
        names the same bytes (content-addressed).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the row could not be written.
        """
        self._remember(project, identity, entry)
        if self._sessions is not None:
            await anyio.to_thread.run_sync(self._insert, self._sessions, project, identity, entry)

    async def discard(self, project: str, identity: str) -> None:
        """Forget `identity`, in memory and in the table (in a worker thread).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the row could not be deleted.
        """
        if self._entries.pop(identity, None) is not None:
            self._generations[project] = self._generations.get(project, 0) + 1
        if self._sessions is not None:
            await anyio.to_thread.run_sync(self._delete, self._sessions, identity)

    @staticmethod
    def _delete(sessions: sessionmaker[Session], identity: str) -> None:
        with sessions.begin() as session:
            session.execute(delete(UpstreamMetadata).where(UpstreamMetadata.identity == identity))

    @staticmethod
    def _select(sessions: sessionmaker[Session], identity: str) -> ExtractedMetadata | None:
        with sessions() as session:
            row = session.execute(
                select(UpstreamMetadata.sha256, UpstreamMetadata.blob_key).where(
                    UpstreamMetadata.identity == identity
                )
            ).one_or_none()
        return None if row is None else ExtractedMetadata(row.sha256, row.blob_key)

    @staticmethod
    def _insert(
        sessions: sessionmaker[Session], project: str, identity: str, entry: ExtractedMetadata
    ) -> None:
        with sessions.begin() as session:
            row = {
                "identity": identity,
                "project": project,
                "sha256": entry.sha256,
                "blob_key": entry.key,
                "created_at": datetime.now(UTC),
            }
            insert = upsert(session, UpstreamMetadata).values(row)
            session.execute(insert.on_conflict_do_nothing(index_elements=["identity"]))

    def _remember(self, project: str, identity: str, entry: ExtractedMetadata) -> None:
        if self._entries.get(identity) != entry:
            self._entries[identity] = entry
            self._generations[project] = self._generations.get(project, 0) + 1


class MetadataCheck:
    """The file cache's `DownloadCheck` of wheels whose METADATA was extracted: the
    whole wheel's METADATA must be the copy clients were given."""

    def __init__(self, reader: RemoteMetadataReader) -> None:
        self._reader = reader

    async def applies(self, resource: RemoteFile) -> bool:
        """Whether `resource` is a wheel whose METADATA was extracted (by any replica)."""
        if not resource.filename.endswith(".whl"):
            return False
        try:
            return await self._reader.known(resource) is not None
        except SQLAlchemyError as exc:  # what this process extracted is in memory
            logger.warning("cannot check %s against extracted metadata: %s", resource.url, exc)
            return False

    async def check(self, resource: RemoteFile, read: RangeReader, size: int) -> None:
        """See `file_cache.DownloadCheck.check`.

        Raises:
            UpstreamError: the wheel's METADATA differs from the extracted copy
                (which is then discarded), or cannot be read.
        """
        await self._reader.check_download(resource, read, size)


class RangesUnavailable(UpstreamError):
    """The upstream refuses byte ranges, and reading the whole wheel was not allowed."""


class _RangesRefused(Exception):
    """The upstream answered a range request with the whole file."""


class RemoteMetadataReader:
    """Reads, keeps and finds the METADATA of wheels served by other sources."""

    def __init__(
        self,
        store: BlobStore,
        sessions: sessionmaker[Session] | None = None,
        *,
        temp_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`store` keeps the METADATA blobs and `sessions` the index (`MetadataIndex`:
        None keeps it in memory only); `temp_dir` receives whole wheels of
        upstreams that refuse ranges.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the index cannot be read.
        """
        self._store = store
        self._index = MetadataIndex(sessions)
        self._temp_dir = temp_dir
        self._clock = clock
        self._refused: dict[str, float] = {}
        self._flights: Flights[str, tuple[ExtractedMetadata, bytes]] = Flights()

    def lookup(self, dist: DistFile, source: str = "") -> ExtractedMetadata | None:
        """Where the METADATA of `dist` (of `source`) is kept, if it was extracted already."""
        return self._index.get(wheel_identity(dist, source))

    def generation(self, project: str) -> int:
        """Changes whenever a wheel of `project` gains extracted metadata."""
        return self._index.generation(project)

    async def extract(
        self,
        project: str,
        dist: DistFile,
        wheel: Resource,
        *,
        download: bool = True,
        source: str | None = None,
    ) -> tuple[ExtractedMetadata, bytes]:
        """The METADATA of the wheel `dist` of `project` (of `source`, by default
        the upstream of `wheel`), whose bytes are `wheel`.

        Read once for all concurrent callers, checked (name and version agree
        with the filename), stored and indexed; found in the store instead if
        another process extracted it meanwhile. Without `download`, an
        upstream that refuses byte ranges is not read whole (a read-ahead must
        not cost whole wheels); a caller that allows it and had joined such a
        read then reads the wheel itself.

        Raises:
            RangesUnavailable: `download` is False and the upstream refuses ranges.
            UpstreamError: the upstream's wheel is not a readable wheel, or its
                bytes do not match the page's size or sha256 (a 502).
            UpstreamUnavailable, FileNotFound: the upstream failed, or no
                longer has the file.
            InvalidDistribution: a wheel from this server's own storage is broken.
            OSError: the blob store could not be written.
            sqlalchemy.exc.SQLAlchemyError: the index could not be read or written.
        """
        if source is None:
            source = wheel.upstream if isinstance(wheel, RemoteFile) else ""
        identity = wheel_identity(dist, source)
        try:
            return await self._flights.run(
                identity, lambda: self._extract_once(project, identity, dist, wheel, download)
            )
        except RangesUnavailable:
            if not download:
                raise
            return await self._flights.run(
                identity, lambda: self._extract_once(project, identity, dist, wheel, True)
            )

    async def known(self, resource: RemoteFile) -> ExtractedMetadata | None:
        """The extracted METADATA of the upstream wheel `resource`, if any.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the index cannot be read.
        """
        project = _project(resource.filename)
        if project is None:
            return None
        return await self._index.find(project, download_identity(resource))

    async def check_download(self, resource: RemoteFile, read: RangeReader, size: int) -> None:
        """Compare the METADATA of a whole, verified wheel with its extracted copy.

        `read` reads the wheel's bytes, `size` is its size. A copy that differs
        is discarded (row and blob) and logged as `upstream-metadata-mismatch`.

        Raises:
            UpstreamError: the METADATA differs, or the wheel's cannot be read.
        """
        known = await self.known(resource)
        project = _project(resource.filename)
        if known is None or project is None:
            return
        parsed = parse_filename(resource.filename)
        try:
            real = parse_core_metadata(await read_wheel_metadata(read, size, parsed), parsed)
            digest: str | None = hashlib.sha256(real.content).hexdigest()
        except InvalidDistribution:
            digest = None
        if digest == known.sha256:
            return
        await self._index.discard(project, download_identity(resource))
        try:
            await self._store.delete(known.key)
        except OSError as exc:  # the row is gone: the blob is merely orphaned
            logger.warning("could not delete the discarded metadata %s: %s", known.key, exc)
        reason = (
            f"the METADATA of the whole wheel (sha256 {digest}) is not the one read "
            f"earlier by byte ranges (sha256 {known.sha256})"
        )
        upstream_events.emit(
            "upstream-metadata-mismatch",
            resource.upstream,
            filename=resource.filename,
            reason=reason,
        )
        _fail(
            resource,
            f"sent {resource.filename}, but {reason}: the copy was discarded and the file "
            "refused; resolve again",
        )

    async def _extract_once(
        self, project: str, identity: str, dist: DistFile, wheel: Resource, download: bool
    ) -> tuple[ExtractedMetadata, bytes]:
        # Another replica may have extracted it: the table is asked before the upstream.
        known = await self._index.find(project, identity)
        if known is not None:
            try:
                return known, await read_metadata_blob(self._store, known.key, known.sha256)
            except (FileNotFoundError, DamagedBlob):
                pass  # removed, or lost in a crash (it is not durable): extract it again
        content = await self._read(dist.filename, wheel, download)
        # Not durable: it can be extracted again, and syncing it would make the
        # client wait for the disk (see `read_metadata_blob`'s callers).
        blob = await self._store.put(dist.filename + ".metadata", content, durable=False)
        entry = ExtractedMetadata(blob.sha256, blob.key)
        await self._index.add(project, identity, entry)
        return entry, content

    async def _read(self, filename: str, wheel: Resource, download: bool) -> bytes:
        """METADATA, from any kind of resource, checked against the filename."""
        try:
            parsed = parse_filename(filename)
            if isinstance(wheel, RemoteFile):
                content = await self._read_remote(parsed, wheel, download)
            elif isinstance(wheel, StoredFile):
                content = await read_wheel_metadata(_stored_reader(wheel), wheel.size, parsed)
            else:
                content = await read_wheel_metadata(
                    _inline_reader(wheel), len(wheel.content), parsed
                )
            return parse_core_metadata(content, parsed).content
        except InvalidDistribution as exc:
            if isinstance(wheel, RemoteFile):
                raise UpstreamError(wheel.upstream, f"serves an unreadable wheel: {exc}") from exc
            raise

    async def _read_remote(self, parsed: DistFilename, wheel: RemoteFile, download: bool) -> bytes:
        refused_at = self._refused.get(wheel.upstream)
        if refused_at is None or self._clock() - refused_at >= RANGE_RETRY_SECONDS:
            try:
                return await self._read_ranges(parsed, wheel)
            except _RangesRefused:
                self._refused[wheel.upstream] = self._clock()
        if not download:
            raise RangesUnavailable(wheel.upstream, "does not serve byte ranges")
        return await self._read_download(parsed, wheel)

    async def _read_ranges(self, parsed: DistFilename, wheel: RemoteFile) -> bytes:
        """Range requests only; the size comes from the page, else from a 1-byte probe.

        Each read starts on a 4 KiB boundary (`ALIGNMENT`): nginx serving with
        sendfile answers a range that starts mid-page and reaches the end of
        the file about 40 ms late to some clients (aiohttp and httpx alike),
        while an aligned one costs at most 4 KiB more. (A suffix request,
        `bytes=-N`, would save the probe but cannot be aligned.)

        Raises:
            _RangesRefused: the upstream answered a range with the whole file.
        """
        parts = parts_opener(wheel)  # unverified: checked against the whole wheel later
        size = wheel.size
        if size is None:
            size = await self._probe_size(wheel)

        async def read(start: int, end: int) -> bytes:
            aligned = start - start % ALIGNMENT
            async with parts.open(wheel.url, ByteRange(aligned, end - 1)) as body:
                if not body.ranged:
                    raise _RangesRefused
                if body.size is not None and body.size != size:
                    message = f"has {body.size} bytes of {wheel.filename}; expected {size}"
                    raise UpstreamError(wheel.upstream, message)
                return b"".join([chunk async for chunk in body.chunks])[start - aligned :]

        return await read_wheel_metadata(read, size, parsed)

    async def _probe_size(self, wheel: RemoteFile) -> int:
        """The file's size, from the Content-Range of a request for its first byte.

        Raises:
            _RangesRefused: the upstream answered with the whole file, or
                without a size.
        """
        async with parts_opener(wheel).open(wheel.url, ByteRange(0, 0)) as body:
            if not body.ranged or body.size is None:
                raise _RangesRefused
            # Read to the end (one byte), so the connection goes back to the pool.
            async for _ in body.chunks:
                pass
            return body.size

    async def _read_download(self, parsed: DistFilename, wheel: RemoteFile) -> bytes:
        """ONE full download into a temporary file, then `read_core_metadata`."""
        place = f"the spool directory {self._temp_dir or tempfile.gettempdir()}"
        with storing(place, wheel.filename):
            fd, name = await anyio.to_thread.run_sync(_temp_file, self._temp_dir)
        path = Path(name)
        try:
            with storing(place, wheel.filename):
                await self._download(wheel, fd)
            metadata = await anyio.to_thread.run_sync(read_core_metadata, path, parsed)
            return metadata.content
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def _download(self, wheel: RemoteFile, fd: int) -> None:
        """Stream the whole file into `fd`, bounded by its size, checked by its sha256.

        Raises:
            UpstreamError: more bytes than the size, fewer, or another sha256.
        """
        digest = hashlib.sha256()
        written = 0
        async with (
            await anyio.open_file(fd, "wb") as file,
            wheel.opener.open(wheel.url, None) as body,
        ):
            expected = wheel.size if wheel.size is not None else body.size
            limit = MAX_DOWNLOAD_BYTES if expected is None else expected
            async for chunk in body.chunks:
                written += len(chunk)
                if written > limit:
                    _fail(wheel, f"sends more than {limit} bytes of {wheel.filename}")
                digest.update(chunk)
                await file.write(chunk)
        if expected is not None and written != expected:
            _fail(wheel, f"sent {written} bytes of {wheel.filename}; expected {expected}")
        if wheel.sha256 is not None and digest.hexdigest() != wheel.sha256.lower():
            _fail(wheel, f"sent a {wheel.filename} that does not match its sha256")


def _stored_reader(wheel: StoredFile) -> RangeReader:
    async def read(start: int, end: int) -> bytes:
        chunks = wheel.store.read(wheel.key, ByteRange(start, end - 1))
        return b"".join([chunk async for chunk in chunks])

    return read


def _inline_reader(wheel: InlineFile) -> RangeReader:
    async def read(start: int, end: int) -> bytes:
        return wheel.content[start:end]

    return read


def _temp_file(folder: Path | None) -> tuple[int, str]:
    if folder is not None:  # e.g. a spool folder in a fresh, empty data directory
        folder.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=folder, prefix="packyard-", suffix=".whl")


def _project(filename: str) -> str | None:
    try:
        return str(parse_filename(filename).name)
    except InvalidDistribution:
        return None


def _fail(wheel: RemoteFile, message: str) -> NoReturn:
    raise UpstreamError(wheel.upstream, message)
