"""The data that flows through the read path: frozen, immutable values.

Project names in these values are always normalised (`canonicalize_name`),
except `ProjectEntry.name`, which may be a display name (SRA §Project List).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from packyard.errors import RangeNotSatisfiable

SOURCE_LOCAL = "local"
"""`ProjectDetail.source` of projects served from the in-house store."""


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    """PEP 792 project status: active, archived, quarantined or deprecated."""

    status: str = "active"
    reason: str | None = None


ACTIVE = ProjectStatus()


@dataclass(frozen=True, slots=True)
class DistFile:
    """One distribution file of a project, as a source describes it.

    `url` is where the *source* gets the bytes (an absolute upstream URL, or
    empty for the local store); served pages never show it, they link to this
    server's `/files/` route instead (DESIGN §2).
    """

    filename: str
    url: str = ""
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    # PEP 658/714: False = no metadata file, True = available without a known
    # hash, a mapping = available with these hashes of the metadata file.
    core_metadata: bool | Mapping[str, str] = False
    # PEP 592: False = not yanked, True = yanked without reason, str = reason.
    yanked: bool | str = False
    size: int | None = None
    upload_time: datetime | None = None
    # PEP 740: where the source keeps the file's provenance object (None: it has
    # none). Served pages link to this server's `/integrity/` route instead.
    provenance: str | None = None
    gpg_sig: bool | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")


@dataclass(frozen=True, slots=True)
class ProjectDetail:
    """One project page: its files and versions, from exactly one source.

    Components that change nothing must return the very same object on the
    next call, so that the HTTP edge can reuse the page it already rendered.
    """

    name: str
    files: tuple[DistFile, ...]
    versions: tuple[str, ...] = ()
    status: ProjectStatus = ACTIVE
    source: str = SOURCE_LOCAL
    # `_`-prefixed JSON keys reserved for the server (SRA §JSON Serialization),
    # e.g. files hidden by a policy with the reason; keys without the `_`.
    private: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectEntry:
    name: str


@dataclass(frozen=True, slots=True)
class ProjectList:
    projects: tuple[ProjectEntry, ...]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, for telemetry and access decisions further down the chain."""

    identity: str | None = None
    client: str | None = None
    user_agent: str | None = None


ANONYMOUS = RequestContext()


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable, inclusive byte range `start`..`end` of a file of `size` bytes."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @staticmethod
    def clamp(start: int | None, end: int | None, size: int) -> ByteRange:
        """Resolve the three RFC 9110 forms: `a-b`, `a-` and the suffix `-n` (start None).

        Raises:
            RangeNotSatisfiable: the range starts past the end, or is an empty suffix.
        """
        if start is None:
            if end is None or end == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return ByteRange(max(size - end, 0), size - 1)
        if start >= size or (end is not None and end < start):
            raise RangeNotSatisfiable(size)
        last = size - 1 if end is None else min(end, size - 1)
        return ByteRange(start, last)


class BlobReader(Protocol):
    """Reads bytes of a stored blob (implemented by each blob store)."""

    def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class AdvisoryNote:
    """What known vulnerabilities say about a file being served, for telemetry.

    `ids`: the advisories affecting it (those an admin accepted when `action`
    is `accepted`); `source`: its page's source; `action`: the policy applied
    (`warn`, `yank`, `hide`), or `accepted`.
    """

    ids: tuple[str, ...]
    source: str
    action: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A resource whose bytes are in our own blob storage."""

    filename: str
    key: str
    size: int
    sha256: str
    store: BlobReader
    content_type: str = "application/octet-stream"
    modified: datetime | None = None
    advisories: AdvisoryNote | None = None  # set by the advisories component


@dataclass(frozen=True, slots=True)
class InlineFile:
    """A resource computed in memory, such as a `.metadata` file."""

    filename: str
    content: bytes
    sha256: str
    content_type: str = "application/octet-stream"
    modified: datetime | None = None
    advisories: AdvisoryNote | None = None  # set by the advisories component


@dataclass(frozen=True, slots=True)
class RemoteBody:
    """An open upstream response: the file's total size and the bytes asked for.

    `ranged` is False when a range was asked and the upstream sent the whole
    file instead (a 200): the chunks are still the range, but reaching a range
    near the end then downloads everything before it.
    """

    size: int | None
    chunks: AsyncIterator[bytes]
    ranged: bool = True


class RemoteOpener(Protocol):
    """Opens a streaming GET of an upstream file (implemented by the upstream client).

    `open(url, byte_range)` yields a `RemoteBody` whose chunks are exactly the
    bytes of `byte_range` (or the whole file for None), whether or not the
    upstream honoured the Range header: the opener skips and truncates itself.

    Raises (on entering):
        UpstreamUnavailable, UpstreamError: the upstream failed.
        FileNotFound: the upstream answered 404.
    """

    def open(
        self, url: str, byte_range: ByteRange | None
    ) -> AbstractAsyncContextManager[RemoteBody]: ...


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A resource streamed from an upstream through this server (never a redirect)."""

    filename: str
    url: str
    opener: RemoteOpener
    upstream: str
    sha256: str | None = None
    size: int | None = None
    content_type: str = "application/octet-stream"
    modified: datetime | None = None
    advisories: AdvisoryNote | None = None  # set by the advisories component


Resource = StoredFile | InlineFile | RemoteFile
