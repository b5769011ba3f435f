"""The scheduled import of `[advisories] source`: one replica per period.

    refresh = AdvisoryRefresh(sessions, settings.advisories, spool=spool, client=client)
    async with refresh.running():   # the app's lifespan: a task, stopped on exit
        ...

Every `refresh_hours`, the source (a directory, zip or record file on this
machine, or an http(s) URL of a zip or a record) is imported as
`packyard advisories import` would, by the actor `system:advisories-refresh`.
Every worker of every replica runs this loop; one of them imports, the
others see the import through the store's serial like any write:

- Each sleeps until the newest scheduled import of this source is a period
  old (the `advisory_imports` rows are the schedule: nothing else is kept).
- It downloads the source (a URL) outside any transaction, then opens the
  import's transaction and first claims it: on PostgreSQL by
  `pg_try_advisory_xact_lock`, which a second replica fails at once (and
  skips); elsewhere (SQLite) by taking the database's write lock, which a
  second worker waits for. Holding the claim, it looks at the newest import
  again: if another replica imported meanwhile, it imports nothing.
- The claim ends with the transaction, so a replica that dies mid-import
  leaves no lease behind: the next period anyone may import.

A failure (the download, the source, the database) is logged as an
`advisories-refresh-failed` event and tried again a period later; it never
stops the server. A download is streamed to a temporary file in the spool
folder, refused past `MAX_DOWNLOAD_BYTES` or `DOWNLOAD_DEADLINE_SECONDS`,
and removed afterwards.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.events import emit
from packyard.advisories.importing import ImportReport, import_into
from packyard.advisories.sources import RECORD_SUFFIXES, Entry, read_source
from packyard.db.advisories import AdvisoryImport
from packyard.db.claims import claim
from packyard.publish.audit import Origin
from packyard.settings import AdvisorySettings

REFRESH_ACTOR = "system:advisories-refresh"
SCHEDULE = Origin(client_ip=None, user_agent="packyard-refresh")
# The PostgreSQL advisory lock of the import's transaction ("pkya"; migrations hold "pkyd").
REFRESH_LOCK = 0x706B7961
MAX_DOWNLOAD_BYTES = 1024**3  # osv.dev's whole PyPI export is well under 100 MB
DOWNLOAD_DEADLINE_SECONDS = 900.0
CHUNK_BYTES = 1024 * 1024
# A replica's timer may fire a moment before the due time another wrote.
MAX_SLACK = timedelta(minutes=1)


class RefreshFailed(Exception):
    """This period's refresh could not be done; the message says why."""


class _Stopped(Exception):
    """The server is stopping: the import's transaction is rolled back."""


class _NotOurs(Exception):
    """Another process imports, or has just imported: roll back, import nothing."""


class AdvisoryRefresh:
    """The refresh loop of one process; see the module's docstring.

    Args:
        sessions: the store's sessions.
        settings: `[advisories]`, whose `source` is set.
        spool: a folder for the downloaded copy (created if missing).
        client: the process's HTTP client (closed by its owner); a URL source needs it.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: AdvisorySettings,
        *,
        spool: Path,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if settings.source is None:
            raise ValueError("[advisories] source is not set: there is nothing to refresh")
        self._sessions = sessions
        self._source = settings.source
        self._label = shown_source(settings.source)
        self._period = timedelta(hours=settings.refresh_hours)
        self._slack = min(MAX_SLACK, self._period / 10)
        self._spool = spool
        self._client = client
        self._stopping = threading.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loop in a task while the block runs; stop it on exit, rolling
        back an import under way (nothing of it is kept)."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.run)
            try:
                yield
            finally:
                self._stopping.set()
                tasks.cancel_scope.cancel()

    async def run(self) -> None:
        """Refresh whenever due, forever; failures are logged, never raised."""
        while True:
            try:
                await anyio.sleep(await anyio.to_thread.run_sync(self._seconds_until_due))
                if await self.refresh() is None:
                    # Another process imports, or just did: look again in a while.
                    await anyio.sleep(self._slack.total_seconds())
            except _Stopped:
                return
            except Exception as exc:  # whatever it was, the server goes on
                emit(
                    "advisories-refresh-failed",
                    level=logging.WARNING,
                    source=self._label,
                    reason=f"{type(exc).__name__}: {exc}".splitlines()[0],
                )
                await anyio.sleep(self._period.total_seconds())

    async def refresh(self) -> ImportReport | None:
        """Import the source now if it is due and no other process does.

        Returns the import's report, or None when it was not this process's to do.

        Raises:
            RefreshFailed: the source could not be downloaded.
            SourceUnreadable: the source cannot be read as a whole.
            sqlalchemy.exc.SQLAlchemyError: the database failed; nothing was imported.
        """
        if await anyio.to_thread.run_sync(self._seconds_until_due) > 0:
            return None
        async with self._local_copy() as path:
            report = await anyio.to_thread.run_sync(self._import, path)
        if report is not None:
            emit("advisories-refresh", source=self._label, **report.summary())
        return report

    def _seconds_until_due(self) -> float:
        with self._sessions() as session:
            return self._wait(session).total_seconds()

    def _wait(self, session: Session) -> timedelta:
        """How long until the next scheduled import is due (zero: now)."""
        last = session.scalar(
            select(AdvisoryImport.at)
            .where(AdvisoryImport.actor == REFRESH_ACTOR, AdvisoryImport.source == self._label)
            .order_by(AdvisoryImport.at.desc())
            .limit(1)
        )
        if last is None:
            return timedelta(0)
        return max(timedelta(0), last + self._period - self._slack - datetime.now(UTC))

    def _import(self, path: Path) -> ImportReport | None:
        """The import in one transaction, if this process wins the claim."""
        try:
            with self._sessions.begin() as session:
                if not claim(session, REFRESH_LOCK) or self._wait(session) > timedelta(0):
                    raise _NotOurs
                return import_into(
                    session,
                    self._unless_stopping(read_source(path)),
                    actor=REFRESH_ACTOR,
                    source=self._label,
                    origin=SCHEDULE,
                )
        except _NotOurs:
            return None

    def _unless_stopping(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        for entry in entries:
            if self._stopping.is_set():
                raise _Stopped
            yield entry

    @asynccontextmanager
    async def _local_copy(self) -> AsyncIterator[Path]:
        """The source as a file or folder here: itself, or a downloaded copy
        removed on exit."""
        if not _is_url(self._source):
            yield Path(self._source)
            return
        path = await anyio.to_thread.run_sync(_temporary_file, self._spool, _suffix(self._source))
        try:
            await self._download(path)
            yield path
        finally:
            await anyio.Path(path).unlink(missing_ok=True)

    async def _download(self, path: Path) -> None:
        if self._client is None:
            raise RefreshFailed(f"{self._label}: no HTTP client to download it with")
        try:
            with anyio.fail_after(DOWNLOAD_DEADLINE_SECONDS):
                await self._stream(self._client, path)
        except TimeoutError:
            raise RefreshFailed(
                f"{self._label}: not downloaded within {DOWNLOAD_DEADLINE_SECONDS:.0f} s"
            ) from None
        except httpx.HTTPError as exc:
            raise RefreshFailed(f"{self._label}: {type(exc).__name__}: {exc}") from None

    async def _stream(self, client: httpx.AsyncClient, path: Path) -> None:
        async with client.stream("GET", self._source, follow_redirects=True) as response:
            if response.status_code != 200:
                raise RefreshFailed(f"{self._label} answered HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > MAX_DOWNLOAD_BYTES:
                raise RefreshFailed(f"{self._label} is larger than {MAX_DOWNLOAD_BYTES} bytes")
            size = 0
            async with await anyio.open_file(path, "wb") as out:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise RefreshFailed(
                            f"{self._label} is larger than {MAX_DOWNLOAD_BYTES} bytes"
                        )
                    await out.write(chunk)


def _temporary_file(folder: Path, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix="advisories-", suffix=suffix)
    os.close(handle)
    return Path(name)


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _suffix(url: str) -> str:
    """The downloaded copy's suffix: what `read_source` reads it as (a zip, by
    its content, unless the URL names one record)."""
    suffix = PurePosixPath(urlsplit(url).path).suffix
    return suffix if suffix in RECORD_SUFFIXES else ".zip"


def shown_source(source: str) -> str:
    """The source as logs and the import history show it: a URL's password hidden."""
    parts = urlsplit(source)
    if not _is_url(source) or parts.password is None:
        return source
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
