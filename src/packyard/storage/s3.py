"""Blobs as objects in an S3 bucket, through obstore (its Rust core does the HTTP).

Keys are the same content-addressed keys as on the filesystem (`blob_key`),
under a prefix: `<prefix>/ab/cd/abcd…/filename`.

Writing. A new blob is spooled into an anonymous temporary file on local disk
while it is hashed (the hashes name the key, so nothing can be sent before
the last byte). `commit` then stores it with a create-only put: an S3 PUT
with `If-None-Match: *`, which the server refuses with 412 when the key
exists. A refusal means the very bytes are already stored (equal keys, equal
sha256), so the blob is reported `created=False` and nothing fails: two
replicas that store the same blob at once end with one object, and (for a
single PUT, on SeaweedFS 4.x as on AWS S3) exactly one of them is its
creator.

Blobs up to `single_put_limit` bytes go in one PUT, read into memory (obstore
sends a conditional PUT only whole). Larger ones are uploaded in parts to a
staging key under `<prefix>/.tmp/`, then copied to their key with a
create-only multipart copy (CompleteMultipartUpload with `If-None-Match: *`;
the client must be built with `copy_if_not_exists="multipart"`, as
`storage.location` does) and the staging object deleted. Memory stays
bounded. AWS S3 decides that conditional completion atomically; SeaweedFS
(4.48) checks it before completing, so racing large commits may each be
told `created=True` (the object is right either way; the filesystem store's
exists-then-rename has the same window). See docs/decisions.md.

Crashes. An S3 PUT or a completed multipart upload is atomic: an object is
there whole or not at all, so no reader ever sees half a blob. The spool is
an unnamed file that vanishes with the process. A crash between the staging
upload and its deletion leaves a staging object that no key names;
`remove_stale_temp_objects` clears those, and a bucket lifecycle rule should
abort incomplete multipart uploads.

Durability. S3 answers a PUT only once the object is stored, so `durable`
changes nothing here: there is no cheaper, less durable write to choose.

Errors. obstore's errors are translated here: a missing object is
`FileNotFoundError`, as the `BlobStore` contract says; an object store that
cannot be reached, times out, refuses our credentials or answers 5xx is
`StoreUnavailable` (a 503 at the HTTP edge), whose message names the store.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import anyio
import anyio.to_thread
import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotSupportedError, PreconditionError
from obstore.store import S3Store

from packyard.errors import StoreUnavailable
from packyard.model import ByteRange
from packyard.storage.base import BlobWriter, StoredBlob, blob_key, check_key
from packyard.storage.digests import Digests
from packyard.storage.full import free_bytes
from packyard.storage.spool import SpooledWriter

if TYPE_CHECKING:
    from obstore import GetOptions

CHUNK_SIZE = 256 * 1024  # at least this much per chunk (obstore joins smaller reads)
SINGLE_PUT_LIMIT = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PART_CONCURRENCY = 4  # parts in flight per upload: memory is PART_SIZE times this
TEMP_PREFIX = ".tmp"  # keys start with two hex digits, so this never clashes with one

T = TypeVar("T")


class S3BlobStore:
    """A `BlobStore` in an S3 bucket, under `prefix`.

    Args:
        client: the obstore client of the bucket (shared by every store of
            the process: one connection pool); no prefix of its own.
        prefix: the keys' common prefix, `/`-separated, no leading or trailing
            `/` ("" for the bucket's root).
        name: how messages name the store, e.g. `s3://bucket/prefix`.
        spool_dir: where writers spool blobs before upload (the system's
            temporary directory if None).
        single_put_limit: blobs up to this size are sent in one PUT.
    """

    def __init__(
        self,
        client: S3Store,
        prefix: str,
        name: str,
        *,
        spool_dir: Path | None = None,
        single_put_limit: int = SINGLE_PUT_LIMIT,
    ) -> None:
        self.client = client
        self.prefix = prefix.strip("/")
        self.name = name
        self.spool_dir = spool_dir
        self.single_put_limit = single_put_limit

    @property
    def place(self) -> str:
        """Where a blob of this store must fit first, in messages: its local spool."""
        return f"the spool directory {self.spool_dir or tempfile.gettempdir()} of {self.name}"

    def free_bytes(self) -> int:
        """Bytes free in the spool directory, where a blob is whole before it is sent
        (`storage.full.check_room`)."""
        return free_bytes(Path(self.spool_dir or tempfile.gettempdir()))

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> None:
        """Always None: objects are not on this machine (the key is still checked)."""
        check_key(key)

    async def read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        """See `BlobStore.read`; chunks are `CHUNK_SIZE` bytes or a little more (the last may be
        smaller). Also raises `StoreUnavailable` (an OSError), also mid-stream."""
        path = self._path(key)
        options: GetOptions = {}
        if byte_range is not None:
            options["range"] = (byte_range.start, byte_range.end + 1)  # obstore: end exclusive
        try:
            result = await obstore.get_async(self.client, path, options=options)
        except FileNotFoundError:
            raise FileNotFoundError(f"no blob {key!r} in {self.name}") from None
        except BaseError as error:
            raise self.unavailable(error) from error
        chunks = result.stream(min_chunk_size=CHUNK_SIZE)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except BaseError as error:
                raise self.unavailable(error) from error
            yield chunk

    @asynccontextmanager
    async def writer(self, filename: str) -> AsyncIterator[BlobWriter]:
        """See `BlobStore.writer`; `commit` also raises `StoreUnavailable`."""
        blob_key("0" * 64, filename)  # refuse a bad name before writing anything
        spool = await anyio.to_thread.run_sync(self._open_spool)
        writer = S3BlobWriter(self, filename, spool)
        try:
            yield writer
        finally:
            with anyio.CancelScope(shield=True):
                await writer.abort()

    def _open_spool(self) -> BinaryIO:
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        # Unnamed on Linux (O_TMPFILE): nothing is left behind, even by a crash.
        return tempfile.TemporaryFile(dir=self.spool_dir)

    async def put(self, filename: str, content: bytes, *, durable: bool = True) -> StoredBlob:
        """See `BlobStore.put`; `durable` changes nothing on S3 (see the module
        docstring). Also raises `StoreUnavailable`."""
        blob_key("0" * 64, filename)
        digests = Digests.of(content)
        key = blob_key(digests["sha256"], filename)
        created = await self._put_if_absent(key, content)
        return StoredBlob(key=key, size=len(content), created=created, **digests)

    async def _put_if_absent(self, key: str, content: bytes) -> bool:
        """Create `key` with `content` unless it exists; True if this call created it."""
        path = self._path(key)
        try:
            await obstore.put_async(self.client, path, content, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        except NotSupportedError:
            # A store without conditional puts: look first. Two writers may then
            # both report created=True; the object is right either way.
            if await self.exists(key):
                return False
            await self._call(obstore.put_async(self.client, path, content))
        except BaseError as error:
            raise self.unavailable(error) from error
        return True

    async def _upload_if_absent(self, key: str, spool: BinaryIO) -> bool:
        """Multipart-upload `spool` to a staging key, then copy it to `key` unless
        `key` exists; True if this call created it. The staging object is removed."""
        staging = f"{TEMP_PREFIX}/{uuid.uuid4().hex}.part"
        await anyio.to_thread.run_sync(spool.seek, 0)
        try:
            await self._call(
                obstore.put_async(
                    self.client,
                    self._path(staging),
                    spool,
                    chunk_size=PART_SIZE,
                    max_concurrency=PART_CONCURRENCY,
                )
            )
            try:
                await obstore.copy_async(
                    self.client, self._path(staging), self._path(key), overwrite=False
                )
            except (AlreadyExistsError, PreconditionError):
                return False
            except BaseError as error:
                raise self.unavailable(error) from error
            return True
        finally:
            with anyio.CancelScope(shield=True):
                await self.delete(staging)

    async def delete(self, key: str) -> None:
        """See `BlobStore.delete` (deleting a missing object is not an error on S3).
        Also raises `StoreUnavailable`."""
        await self._call(obstore.delete_async(self.client, self._path(key)))

    async def exists(self, key: str) -> bool:
        """See `BlobStore.exists`. Also raises `StoreUnavailable`."""
        try:
            await obstore.head_async(self.client, self._path(key))
        except FileNotFoundError:
            return False
        except BaseError as error:
            raise self.unavailable(error) from error
        return True

    async def presigned_url(self, key: str, expires_in: int) -> str:
        """A URL that lets anyone holding it GET the blob for `expires_in` seconds,
        straight from the object store (for `[s3] presigned_downloads`).

        Signing is local: no request is made, and the blob is not checked to exist.

        Raises:
            InvalidBlobKey: the key is unsafe.
            StoreUnavailable: no credentials could be found to sign with.
        """
        path = self._path(key)
        return await self._call(
            obstore.sign_async(self.client, "GET", path, timedelta(seconds=expires_in))
        )

    async def ping(self) -> None:
        """Ask the store one cheap question (a HEAD of a key that need not exist).

        Raises:
            StoreUnavailable: no answer, a server error, or credentials refused.
        """
        await self.exists(".packyard-ping")

    async def remove_stale_temp_objects(self, max_age: float = 86_400.0) -> int:
        """Delete staging objects older than `max_age` seconds (left by a crash).

        Younger ones may belong to an upload in progress in another replica.
        Returns how many were removed. Raises `StoreUnavailable`.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=max_age)
        removed = 0
        try:
            async for batch in obstore.list(self.client, self._path(TEMP_PREFIX)):
                for meta in batch:
                    if meta["last_modified"] < cutoff:
                        await self._call(obstore.delete_async(self.client, meta["path"]))
                        removed += 1
        except BaseError as error:
            raise self.unavailable(error) from error
        return removed

    async def _call(self, request: Awaitable[T]) -> T:
        try:
            return await request
        except BaseError as error:
            raise self.unavailable(error) from error

    def unavailable(self, error: Exception) -> StoreUnavailable:
        """`error` of obstore as the domain's `StoreUnavailable`, naming this store."""
        return StoreUnavailable(self.name, _first_line(error))


class S3BlobWriter(SpooledWriter):
    """A `BlobWriter` that spools to local disk and uploads on commit; see
    `S3BlobStore.writer`."""

    def __init__(self, store: S3BlobStore, filename: str, spool: BinaryIO) -> None:
        super().__init__(spool, store.place, filename)
        self._store = store

    async def commit(self) -> StoredBlob:
        self._check_open()
        digests = self.hexdigests()
        key = blob_key(digests["sha256"], self._filename)
        try:
            if self.size <= self._store.single_put_limit:
                content = await anyio.to_thread.run_sync(self._read_spool)
                created = await self._store._put_if_absent(key, content)
            else:
                created = await self._store._upload_if_absent(key, self._spool)
        finally:
            await self.abort()
        return StoredBlob(key=key, size=self.size, created=created, **digests)

    def _read_spool(self) -> bytes:
        self._spool.seek(0)
        return self._spool.read()

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        await anyio.to_thread.run_sync(self._spool.close)


def _first_line(error: Exception) -> str:
    """obstore's message without its multi-line debug dump."""
    return str(error).split("\n", 1)[0].strip() or type(error).__name__
