"""Where blobs live: `storage_url` parsed once into the process's one `BlobStorage`.

    storage = open_blob_storage(settings)     # once, in the app's lifespan
    await storage.check()                     # at start: refuse a wrong setting
    files = storage.store("files")            # one BlobStore per area...
    cached = storage.store("cache/files")     # ...all on one client
    await storage.ping()                      # /readyz: does the store answer?

`storage_url` is one of:

- unset, or `file://` without a path: the data directory, so the layout is
  `<data_dir>/files`, `<data_dir>/cache/files`, ...
- `file:///absolute/path`: that directory instead.
- `s3://BUCKET/PREFIX`: objects under `PREFIX/<area>/` in `BUCKET`, reached
  with the `[s3]` settings; each value left unset there comes from the
  standard AWS variable (`AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`,
  `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`). With no keys at all, obstore looks for
  credentials as every AWS SDK does (web identity, ECS, instance metadata).

One client per process: a `BlobStorage` holds the one obstore `S3Store` of
the bucket (its connection pool, timeouts and retries) and hands out an
`S3BlobStore` per area that only adds its prefix. Build it once and pass it
in (STYLE: wire once); `open_blob_store` is a shortcut for a single area.

On S3, a process that serves `/files/` (roles `all` and `index`) keeps
replica-local copies of the files and cached upstream files it serves, up to
`[s3] local_copies_mb` in `<data_dir>/blob-copies/` (`storage/local_copies.py`):
the areas FILES and CACHED_FILES are then a `LocalCopyStore` around their
`S3BlobStore`, sharing one bound. Cached pages are not copied: they are small,
and `CacheRepository` keeps the pages it serves in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from packyard.errors import ConfigurationError, StoreUnavailable
from packyard.settings import Settings
from packyard.storage.base import BlobStore, InvalidBlobKey, check_key
from packyard.storage.filesystem import FilesystemBlobStore
from packyard.storage.local_copies import (
    COPIES_DIR,
    LocalCopies,
    LocalCopyStore,
    kernel_boot_id,
)
from packyard.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from obstore.store import RetryConfig, S3Config

# A store that is down answers fast (connection refused); one that hangs is cut
# off by these. The whole-request bound is long because downloads stream
# through us at the client's pace; a stalled read is caught by READ_TIMEOUT.
CONNECT_TIMEOUT = "5s"
READ_TIMEOUT = "60s"
REQUEST_TIMEOUT = "1h"
RETRIES: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=20),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
}
# The areas of the storage, each a prefix (a directory) of its own.
FILES = "files"  # in-house files and every METADATA blob: what the database refers to
CACHED_FILES = "cache/files"  # upstream files: evicted least recently used first
CACHED_PAGES = "cache/pages"  # upstream pages
COPIED_AREAS = frozenset({FILES, CACHED_FILES})  # what downloads read: worth a local copy
# The roles that serve /files/ (`routes/roles.py`): the others would only fill copies.
COPYING_ROLES = frozenset({"all", "index"})
DEFAULT_REGION = "us-east-1"  # what most S3-compatible servers expect when told nothing
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_USAGE = "use file:///ABSOLUTE/PATH or s3://BUCKET/PREFIX"


@dataclass(frozen=True, slots=True)
class S3Location:
    """The parsed `s3://BUCKET/PREFIX` and the connection settings resolved for it."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class BlobStorage:
    """The process's blob storage: one root (a directory or a bucket) and one
    client, handing out a `BlobStore` per area. Build with `open_blob_storage`."""

    def __init__(
        self,
        url: str,
        root: Path | None,
        s3: S3Location | None,
        spool_dir: Path,
        copies: LocalCopies | None = None,
    ):
        """`copies`, for an S3 storage, holds local copies of the areas COPIED_AREAS."""
        self.url = url
        self._root = root
        self._s3 = s3
        self._spool_dir = spool_dir
        self._copies = copies
        self._client = _s3_client(s3) if s3 is not None else None
        self._stores: dict[str, BlobStore] = {}

    @property
    def local_root(self) -> Path | None:
        """The directory of a `file://` storage; None for an object store."""
        return self._root

    def store(self, area: str) -> BlobStore:
        """The store of `area` (a relative prefix such as "files" or "cache/files").

        Raises:
            ConfigurationError: `area` is not a safe relative path.
        """
        if area not in self._stores:
            self._stores[area] = self._open(_checked_area(area))
        return self._stores[area]

    def _open(self, area: str) -> BlobStore:
        if self._client is None or self._s3 is None:
            assert self._root is not None
            return FilesystemBlobStore(self._root / area)
        prefix = "/".join(part for part in (self._s3.prefix, area) if part)
        name = f"s3://{self._s3.bucket}/{prefix}"
        store = S3BlobStore(self._client, prefix, name, spool_dir=self._spool_dir)
        if self._copies is not None and area in COPIED_AREAS:
            return LocalCopyStore(store, self._copies, area)
        return store

    async def check(self) -> None:
        """At start: refuse a store that cannot work, naming the setting to fix.

        A directory must be (or become) a writable directory; a bucket must
        exist and take our credentials (checked by listing the prefix: read
        access only).

        Raises:
            ConfigurationError: not a directory / not writable, no such bucket,
                credentials refused.
            StoreUnavailable: the object store could not be reached.
        """
        if self._client is None or self._s3 is None:
            assert self._root is not None
            await anyio.to_thread.run_sync(_check_directory, self._root, self.url)
            return
        await _check_bucket(self._client, self._s3)

    async def ping(self) -> None:
        """For readiness probes: the store answers.

        Raises:
            StoreUnavailable: it does not (or, for S3, refuses our credentials).
        """
        if self._client is None or self._s3 is None:
            assert self._root is not None
            if not await anyio.to_thread.run_sync(self._root.is_dir):
                raise StoreUnavailable(self.url, "the directory does not exist")
            return
        store = self.store(FILES)
        assert isinstance(store, S3BlobStore | LocalCopyStore)
        await store.ping()


def open_blob_storage(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    local_copies: bool = False,
) -> BlobStorage:
    """The blob storage that `settings.storage_url` names (see the module docstring).

    No request is made: call `check` before serving.

    Args:
        settings: the process's settings (`storage_url`, `data_dir`, `[s3]`, `role`).
        environ: where the AWS variables are read (defaults to `os.environ`).
        local_copies: True for the server (`compose.build_app`): keep copies as
            `[s3] local_copies_mb` and the role say. The tools (import, verify,
            governance) never do: verify must read the store itself, and the
            others would only fill a directory nobody serves from.

    Raises:
        ConfigurationError: `storage_url` or `[s3]` is not valid; the message
            names the setting.
    """
    env = os.environ if environ is None else environ
    spool_dir = settings.data_dir / "spool"
    url = settings.storage_url or "file://"
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"storage_url {url!r} has a query or fragment: {_USAGE}")
    if parts.scheme == "file":
        root = _file_root(url, settings.data_dir)
        return BlobStorage(f"file://{root}", root, None, spool_dir)
    if parts.scheme == "s3":
        s3 = _s3_location(url, settings, env)
        copies = _local_copies(settings) if local_copies else None
        return BlobStorage(s3.url, None, s3, spool_dir, copies)
    raise ConfigurationError(f"storage_url {url!r} has an unsupported scheme: {_USAGE}")


def open_blob_store(settings: Settings, area: str) -> BlobStore:
    """The store of one `area` (e.g. "files", "cache/files") of `settings.storage_url`.

    A shortcut that builds a new client each call: a process that uses
    several areas builds one `open_blob_storage` and asks it for each.

    Raises:
        ConfigurationError: as `open_blob_storage`, or `area` is not a safe
            relative path.
    """
    return open_blob_storage(settings).store(area)


def _local_copies(settings: Settings) -> LocalCopies | None:
    """The copies `[s3] local_copies_mb` asks for, if this process serves /files/."""
    size = settings.s3.local_copies_mb * 1024 * 1024
    if size == 0 or settings.role not in COPYING_ROLES:
        return None
    return LocalCopies(settings.data_dir / COPIES_DIR, size, boot_id=kernel_boot_id())


def _checked_area(area: str) -> str:
    try:
        return check_key(area)
    except InvalidBlobKey:
        raise ConfigurationError(f"not a usable blob storage area: {area!r}") from None


def _file_root(url: str, data_dir: Path) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"storage_url {url!r} names a host ({parts.netloc!r}): a file URL is a local "
            "path, file:///ABSOLUTE/PATH (three slashes)"
        )
    if not parts.path:
        return data_dir.absolute()
    return Path(parts.path)


def _s3_location(url: str, settings: Settings, env: Mapping[str, str]) -> S3Location:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket:
        raise ConfigurationError(f"storage_url {url!r} names no bucket: {_USAGE}")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigurationError(
            f"storage_url {url!r}: {bucket!r} is not a valid bucket name (3 to 63 lowercase "
            "letters, digits, '.' and '-')"
        )
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except InvalidBlobKey:
            raise ConfigurationError(
                f"storage_url {url!r}: the prefix {prefix!r} has an empty, '.' or '..' part"
            ) from None
    s3 = settings.s3
    endpoint = s3.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint is not None:
        _check_endpoint(endpoint)
    region = s3.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    key_id = s3.access_key_id or env.get("AWS_ACCESS_KEY_ID") or None
    secret = _secret(settings) or env.get("AWS_SECRET_ACCESS_KEY") or None
    if (key_id is None) != (secret is None):
        raise ConfigurationError(
            "[s3] access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY) must be set together: only one of them is"
        )
    return S3Location(bucket, prefix, endpoint, region, key_id, secret)


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"[s3] endpoint_url (or AWS_ENDPOINT_URL) {endpoint!r} is not an http(s) URL"
        )


def _secret(settings: Settings) -> str | None:
    s3 = settings.s3
    if s3.secret_access_key and s3.secret_access_key_file:
        raise ConfigurationError(
            "[s3] secret_access_key and secret_access_key_file are both set: keep one"
        )
    if s3.secret_access_key_file is None:
        return s3.secret_access_key
    try:
        return s3.secret_access_key_file.read_text().strip()
    except OSError as error:
        raise ConfigurationError(
            f"[s3] secret_access_key_file {str(s3.secret_access_key_file)!r} could not be "
            f"read: {error.strerror or error}"
        ) from error


def _s3_client(s3: S3Location) -> S3Store:
    # copy_if_not_exists: large blobs are committed by a create-only copy (see s3.py).
    config: S3Config = {"region": s3.region, "copy_if_not_exists": "multipart"}
    if s3.endpoint_url is not None:
        config["endpoint"] = s3.endpoint_url
    if s3.access_key_id is not None and s3.secret_access_key is not None:
        config["access_key_id"] = s3.access_key_id
        config["secret_access_key"] = s3.secret_access_key
    return S3Store(
        s3.bucket,
        config=config,
        client_options={
            "allow_http": (s3.endpoint_url or "").startswith("http://"),
            "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "timeout": REQUEST_TIMEOUT,
        },
        retry_config=RETRIES,
    )


async def _check_bucket(client: S3Store, s3: S3Location) -> None:
    try:
        await obstore.list_with_delimiter_async(client, s3.prefix or None)
    except (PermissionDeniedError, UnauthenticatedError) as error:
        raise _credentials_refused(s3, error) from error
    except BaseError as error:
        message = str(error)
        if "NoSuchBucket" in message or "404 Not Found" in message:
            raise ConfigurationError(
                f"storage_url {s3.url!r}: the bucket {s3.bucket!r} does not exist at "
                f"{s3.endpoint_url or 'AWS S3'}: create it, or fix the bucket name"
            ) from error
        if any(code in message for code in ("403 Forbidden", "401 Unauthorized")):
            raise _credentials_refused(s3, error) from error
        raise StoreUnavailable(
            s3.url,
            f"{message.split(chr(10), 1)[0]} (check [s3] endpoint_url / AWS_ENDPOINT_URL)",
        ) from error


def _credentials_refused(s3: S3Location, error: Exception) -> ConfigurationError:
    first_line = str(error).split("\n", 1)[0]
    return ConfigurationError(
        f"storage_url {s3.url!r}: the object store refused the credentials of [s3] "
        "access_key_id / secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), "
        f"or they may not list the bucket: {first_line}"
    )


def _check_directory(root: Path, url: str) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"storage_url {url!r}: the directory could not be created: {error.strerror or error}"
        ) from error
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigurationError(f"storage_url {url!r}: the directory is not writable")
