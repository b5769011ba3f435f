"""The blob store interface, and the content-addressed key scheme every store shares.

A blob is written through a `BlobWriter`: bytes are streamed in and hashed
on the way, and become visible under their key only on `commit` (DESIGN §3).
Until then nothing a reader can see exists; `abort` (or leaving the writer's
context without committing) throws the bytes away.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packyard.model import ByteRange

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Printable, no path separators: a key segment can never climb out of the root.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")


class InvalidBlobKey(ValueError):
    """A key that could point outside the store (absolute, `..`, separators)."""


def blob_key(sha256: str, filename: str) -> str:
    """The key of a blob: `ab/cd/abcd…/filename`, from its sha256 and its filename.

    Content-addressed, so equal keys always mean equal bytes, and spread over
    two directory levels to keep directories small. The filename is kept so
    that the stored object is recognisable and downloads get their name.

    Raises:
        InvalidBlobKey: `sha256` is not 64 lowercase hex digits, or `filename`
            is empty, `.`/`..`, or contains a separator or control character.
    """
    if not _SHA256.fullmatch(sha256):
        raise InvalidBlobKey(f"not a sha256 hex digest: {sha256!r}")
    if filename in ("", ".", "..") or _FORBIDDEN.search(filename):
        raise InvalidBlobKey(f"not a usable file name for a blob: {filename!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}/{filename}"


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative key: `/`-separated, no empty, `.`
    or `..` segment, no backslash or control character, not absolute.

    Raises:
        InvalidBlobKey: the key is unsafe.
    """
    segments = key.split("/")
    if not key or any(s in ("", ".", "..") or _FORBIDDEN.search(s) for s in segments):
        raise InvalidBlobKey(f"unsafe blob key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A committed blob: its key, size and digests (lowercase hex)."""

    key: str
    size: int
    sha256: str
    blake2_256: str
    md5: str
    # False when a blob with this key (hence these very bytes) was already
    # there: whoever rolls back must then leave it, another row may use it.
    created: bool


class BlobWriter(Protocol):
    """Streams one blob in, hashing it; nothing is visible before `commit`."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    def hexdigests(self) -> dict[str, str]:
        """`sha256`, `blake2_256` and `md5` of the bytes written so far (lowercase hex)."""
        ...

    async def write(self, data: bytes) -> None:
        """Append `data`.

        Raises:
            OSError: the bytes could not be written (e.g. disk full).
            RuntimeError: the writer was already committed or aborted.
        """
        ...

    async def commit(self) -> StoredBlob:
        """Make the blob visible under `blob_key(sha256, filename)`, durably.

        Raises:
            OSError: the blob could not be stored; nothing is left behind.
            RuntimeError: the writer was already committed or aborted.
        """
        ...

    async def abort(self) -> None:
        """Throw the bytes away. Does nothing after commit or a previous abort."""
        ...


class BlobStore(Protocol):
    """Where blobs live (the filesystem, an S3 bucket). Implements `model.BlobReader`."""

    def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        """The bytes of `key`, or of `byte_range` of it, in chunks.

        Raises (while iterating):
            InvalidBlobKey: the key is unsafe.
            FileNotFoundError: there is no such blob (the store and the
                database disagree: a server fault, not a client's 404).
            OSError: the blob could not be read.
        """
        ...

    def local_path(self, key: str) -> Path | None:
        """A path on this machine holding the blob, for zero-copy serving; None if
        the store is not a local filesystem. The file may not exist.

        Raises:
            InvalidBlobKey: the key is unsafe.
        """
        ...

    def writer(self, filename: str) -> AbstractAsyncContextManager[BlobWriter]:
        """A writer for a new blob named `filename`; leaving the context without
        `commit` aborts it, so an exception never leaves a partial blob.

        Raises:
            InvalidBlobKey: `filename` can't be part of a key (see `blob_key`).
            OSError: the temporary file could not be created.
        """
        ...

    async def put(self, filename: str, content: bytes, *, durable: bool = True) -> StoredBlob:
        """Store a small blob held in memory, as `writer` would, in one step.

        `durable=False` is for data that can be made again (a cache): the
        store may skip making it survive a crash, so after one the blob may
        be missing or damaged, and its reader must then make it again.

        Raises:
            InvalidBlobKey: `filename` can't be part of a key (see `blob_key`).
            OSError: the blob could not be stored; nothing is left behind.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob if it exists.

        Raises:
            InvalidBlobKey: the key is unsafe.
            OSError: the blob exists but could not be removed.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Whether the blob exists.

        Raises:
            InvalidBlobKey: the key is unsafe.
        """
        ...
