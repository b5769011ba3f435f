"""`SharedPageStore`: upstream pages kept for every replica (blob storage + database).

When blobs are shared by replicas (S3), the page's JSON is a content-addressed
blob of the blob store, and a row of the table `cached_pages` (upstream,
name, blob key, sha256, fetch time) points at it, so a replica with an empty
data directory serves what the others fetched (DESIGN §3). An unchanged
revalidation updates the row's fetch time only; a replaced page's old blob is
deleted unless another row points at it.

Whether a page is kept is answered on the event loop from the set of names
this upstream had in the table when the store first looked (one query), kept
up to date with this process's own saves and loads: asking the database
instead (a worker-thread hop and a query) would cost each never-fetched page
0.5-0.6 ms on SQLite and 1.2-1.6 ms on PostgreSQL; the set costs 1 µs (a
stat, 12 µs). A name kept by another replica since then reads as absent:
`CacheRepository` fetches it, and loads it after all if the upstream fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from typing import Any

import anyio.from_thread
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import CachedPage, upsert
from packyard.model import ProjectDetail, ProjectList
from packyard.repository.page_codec import (
    FORMAT,
    NAME,
    StoredPage,
    checked_name,
    list_content,
    list_page,
    parse_page,
    project_content,
    project_page,
)
from packyard.storage.base import BlobStore

logger = logging.getLogger(__name__)

LIST_NAME = "_project-list"  # the project list's row in `cached_pages`


class SharedPageStore:
    """A `PageStore` of one upstream in the shared store: blobs in `store`, rows in
    `cached_pages` (`upstream` is the upstream's slug, `repository.cache.upstream_slug`).

    Its methods block on the database and must run in a worker thread started
    by anyio (`CacheRepository` does): the blob store's async calls are made
    from there on the event loop (`anyio.from_thread.run`).

    Several replicas at once: saves of one page upsert its row (`ON CONFLICT`),
    so none fails; the last one wins. A blob is written before a row points at
    it, and a row is repointed (committed) before the blob it left is deleted,
    if no other row points at it. A blob that a concurrent save was about to
    point at may so be deleted; that page then reads as absent and is fetched
    again.
    """

    def __init__(self, sessions: sessionmaker[Session], store: BlobStore, upstream: str) -> None:
        self._sessions = sessions
        self._store = store
        self.upstream = upstream
        # Names with a row, as of the first load and this process's own writes
        # since (set operations are atomic: worker threads write, the loop reads).
        self._known: set[str] | None = None

    def load_project(self, name: str) -> StoredPage[ProjectDetail] | None:
        """See `PageStore.load_project`."""
        if self._known is None:
            self._known = self._names()
        raw = self._read(name) if NAME.fullmatch(name) else None
        return None if raw is None else project_page(*raw, where=self._where(name))

    def has_project(self, name: str) -> bool:
        """See `PageStore.has_project`: True until the names were first read (by
        `load_project`), then whether this process has seen a row of `name`."""
        known = self._known
        return NAME.fullmatch(name) is not None and (known is None or name in known)

    def save_project(self, name: str, detail: ProjectDetail, fetched_at: float) -> None:
        """See `PageStore.save_project`."""
        self._write(checked_name(name), project_content(detail), fetched_at)

    def load_list(self) -> StoredPage[ProjectList] | None:
        """See `PageStore.load_list`."""
        raw = self._read(LIST_NAME)
        return None if raw is None else list_page(*raw, where=self._where(LIST_NAME))

    def save_list(self, projects: ProjectList, fetched_at: float) -> None:
        """See `PageStore.save_list`."""
        self._write(LIST_NAME, list_content(projects), fetched_at)

    def touch(self, name: str | None, fetched_at: float) -> None:
        """See `PageStore.touch`: the row's fetch time only; nothing if there is no row."""
        with self._sessions.begin() as session:
            session.execute(
                update(CachedPage)
                .where(*self._row(LIST_NAME if name is None else checked_name(name)))
                .values(fetched_at=fetched_at)
            )

    def delete_project(self, name: str) -> None:
        """See `PageStore.delete_project`."""
        if not NAME.fullmatch(name):
            return
        with self._sessions.begin() as session:
            key = session.scalar(
                delete(CachedPage).where(*self._row(name)).returning(CachedPage.blob_key)
            )
            if key is None or _pointed_at(session, key):
                key = None
        self._seen(name, False)
        if key is not None:  # after the commit: no row points at it
            anyio.from_thread.run(self._store.delete, key)

    def _read(self, name: str) -> tuple[dict[str, Any], float] | None:
        with self._sessions() as session:
            row = session.execute(
                select(CachedPage.blob_key, CachedPage.sha256, CachedPage.fetched_at).where(
                    *self._row(name)
                )
            ).one_or_none()
        self._seen(name, row is not None)
        if row is None:
            return None
        try:
            data = anyio.from_thread.run(self._read_blob, row.blob_key)
        except OSError as exc:  # FileNotFoundError too: deleted by a concurrent save
            logger.warning("ignoring the unreadable cached page %s: %s", self._where(name), exc)
            return None
        if hashlib.sha256(data).hexdigest() != row.sha256:
            logger.warning("ignoring the cached page %s: sha256 mismatch", self._where(name))
            return None
        raw = parse_page(data, self._where(name))
        return None if raw is None else (raw, row.fetched_at)

    async def _read_blob(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self._store.read(key, None)])

    def _write(self, name: str, content: dict[str, Any], fetched_at: float) -> None:
        data = json.dumps({"format": FORMAT, **content}, separators=(",", ":")).encode()
        # Not durable: a page lost in a crash reads as damaged, hence absent, and is fetched again.
        put = partial(self._store.put, f"{name}.json", data, durable=False)
        blob = anyio.from_thread.run(put)
        left = self._point(name, blob.key, blob.sha256, fetched_at)
        self._seen(name, True)
        if left is not None:
            anyio.from_thread.run(self._store.delete, left)

    def _point(self, name: str, key: str, sha256: str, fetched_at: float) -> str | None:
        """Point the row of `name` at `key`; the key it left, if no row points there now."""
        with self._sessions.begin() as session:
            # A write first: it locks the row (PostgreSQL) or the database (SQLite)
            # before the old key is read, so concurrent saves take turns.
            row = {"upstream": self.upstream, "name": name, "fetched_at": fetched_at}
            insert = upsert(session, CachedPage).values(**row, blob_key=key, sha256=sha256)
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["upstream", "name"],
                    set_={"fetched_at": insert.excluded.fetched_at},
                )
            )
            old = session.scalar(select(CachedPage.blob_key).where(*self._row(name)))
            if old is None or old == key:
                return None
            session.execute(
                update(CachedPage).where(*self._row(name)).values(blob_key=key, sha256=sha256)
            )
            return None if _pointed_at(session, old) else old

    def _names(self) -> set[str]:
        with self._sessions() as session:
            names = session.scalars(
                select(CachedPage.name).where(CachedPage.upstream == self.upstream)
            )
            return set(names)

    def _seen(self, name: str, kept: bool) -> None:
        if self._known is not None and name != LIST_NAME:
            if kept:
                self._known.add(name)
            else:
                self._known.discard(name)

    def _row(self, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return CachedPage.upstream == self.upstream, CachedPage.name == name

    def _where(self, name: str) -> str:
        return f"{self.upstream}/{name}"


def _pointed_at(session: Session, key: str) -> bool:
    """Whether a row of `cached_pages` points at the blob `key`."""
    found = session.scalar(select(CachedPage.name).where(CachedPage.blob_key == key).limit(1))
    return found is not None
