"""`UpstreamProvenance`: the PEP 740 provenance of upstream files, fetched once, kept for good.

An upstream page may give a file a `provenance` URL (`upstream_pages` keeps it
in `DistFile.provenance` when it is on the upstream's own or file hosts).
Served pages point clients to this server's `/integrity/…/provenance` route
instead (DESIGN §2), which asks this component for the document.

The document is fetched with the upstream's own client (`UpstreamOpener`:
its timeouts, proxy, and host checks on every redirect hop), read up to
`MAX_PROVENANCE_BYTES`, and checked to be JSON in the shape of a
`pypi_attestations.Provenance`; anything else is the upstream's fault (a
502 naming it). Its attestations are NOT verified here: that would need the
Trusted Publisher the upstream's project is configured with, which packyard
does not know. Clients that verify (pip, uv, `pypi-attestations verify pypi`)
check the signatures against their own policy; the bytes are passed on as
the upstream served them.

Checked documents are kept like extracted METADATA (`remote_metadata`): the
bytes in the blob store under their content-addressed key, and an index row,
`identity -> (sha256, key)`, in the `upstream_provenance` table. The identity
is a hash of (upstream, provenance URL, filename, the file's sha256), never
the URL itself (it may carry credentials). A provenance object is immutable
for a given file (PEP 740 binds it to the file's digest), so a kept document
is served without asking the upstream again: while the upstream is down too.
Concurrent requests for one document in one process share one fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import NoReturn

import anyio.to_thread
from pydantic import ValidationError
from pypi_attestations import Provenance
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import KeptProvenance, upsert
from packyard.errors import FileNotFound, NotFound, UpstreamError
from packyard.flights import Flights
from packyard.model import DistFile, RemoteOpener
from packyard.repository.base import DelegatingRepository, Repository
from packyard.repository.remote_metadata import ExtractedMetadata
from packyard.repository.upstream import UpstreamRepository
from packyard.storage.base import BlobStore

logger = logging.getLogger(__name__)

MAX_PROVENANCE_BYTES = 1024 * 1024
"""The largest provenance document accepted from an upstream (PyPI's are a few KiB)."""
IDENTITY_PREFIX = "provenance:"


class UpstreamProvenance:
    """The provenance documents of upstream files, by upstream label.

    Args:
        openers: each upstream's opener (its HTTP client), by label.
        store: where kept documents live (the blob store of METADATA blobs).
        sessions: the database of the index (None: kept in memory only).
    """

    def __init__(
        self,
        openers: Mapping[str, RemoteOpener],
        store: BlobStore,
        sessions: sessionmaker[Session] | None,
    ) -> None:
        self._openers = dict(openers)
        self._store = store
        self._sessions = sessions
        self._known: dict[str, ExtractedMetadata] = {}
        self._flights: Flights[str, bytes] = Flights()

    @classmethod
    def of(
        cls,
        sources: Iterable[Repository],
        store: BlobStore,
        sessions: sessionmaker[Session] | None,
    ) -> UpstreamProvenance:
        """Over the clients of the upstreams among `sources` (each found under
        its delegating components, e.g. `CacheRepository`)."""
        openers: dict[str, RemoteOpener] = {}
        for source in sources:
            while isinstance(source, DelegatingRepository):
                source = source.source
            if isinstance(source, UpstreamRepository):
                openers[source.label] = source.opener
        return cls(openers, store, sessions)

    async def __call__(self, upstream: str, project: str, dist: DistFile) -> bytes | None:
        """The provenance document of `dist`, a file of `project` on the page of
        the upstream labelled `upstream`; None if the page gives it none.

        Raises:
            UpstreamError: the upstream served a document that is too large,
                not JSON, or not a provenance object (a 502).
            UpstreamUnavailable: the document is not kept and the upstream
                cannot be reached or fails (a 503).
            NotFound: the upstream answered 404 or 410 for the document.
        """
        opener = self._openers.get(upstream)
        url = dist.provenance
        if url is None or opener is None:
            return None
        identity = _identity(upstream, url, dist)
        return await self._flights.run(
            identity, lambda: self._kept_or_fetched(opener, upstream, url, project, dist, identity)
        )

    async def _kept_or_fetched(
        self,
        opener: RemoteOpener,
        upstream: str,
        url: str,
        project: str,
        dist: DistFile,
        identity: str,
    ) -> bytes:
        kept = await self._read_kept(identity)
        if kept is not None:
            return kept
        body = await _fetch(opener, upstream, url, dist.filename)
        await self._keep(project, identity, dist.filename, body)
        return body

    # --- the kept copies -------------------------------------------------------

    async def _read_kept(self, identity: str) -> bytes | None:
        """The kept document of `identity`; None if there is none, or it cannot be
        read (the index or the store is down, the blob is lost): fetched again."""
        try:
            entry = self._known.get(identity) or await self._find(identity)
            if entry is None:
                return None
            body = await _read_blob(self._store, entry)
        except (SQLAlchemyError, OSError) as exc:  # StoreUnavailable is an OSError
            logger.warning("kept provenance %s unreadable, fetched again: %s", identity, exc)
            return None
        if body is not None:
            self._known[identity] = entry
        return body

    async def _find(self, identity: str) -> ExtractedMetadata | None:
        if self._sessions is None:
            return None
        return await anyio.to_thread.run_sync(_select, self._sessions, identity)

    async def _keep(self, project: str, identity: str, filename: str, body: bytes) -> None:
        """Store and index a checked document; a failure is logged (the document
        is still served, and fetched again next time)."""
        try:
            # Durable: the upstream may be gone when it is next asked for.
            blob = await self._store.put(filename + ".provenance", body)
            entry = ExtractedMetadata(blob.sha256, blob.key)
            if self._sessions is not None:
                await anyio.to_thread.run_sync(_insert, self._sessions, project, identity, entry)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("could not keep the provenance of %s: %s", filename, exc)
            return
        self._known[identity] = entry


async def _fetch(opener: RemoteOpener, upstream: str, url: str, filename: str) -> bytes:
    """GET `url` with the upstream's client and check the document.

    Raises:
        UpstreamError: too large, not JSON, or not a provenance object.
        UpstreamUnavailable: the upstream failed or could not be reached.
        NotFound: the upstream answered 404 or 410.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with opener.open(url, None) as body:
            async for chunk in body.chunks:
                size += len(chunk)
                if size > MAX_PROVENANCE_BYTES:
                    _malformed(upstream, filename, f"larger than {MAX_PROVENANCE_BYTES} bytes")
                chunks.append(chunk)
    except FileNotFound as exc:
        raise NotFound(
            f"{filename} has no provenance: upstream {upstream} answered 404 for it."
        ) from exc
    document = b"".join(chunks)
    _check(document, upstream, filename)
    return document


def _check(document: bytes, upstream: str, filename: str) -> None:
    """PEP 740: a provenance object is JSON of the shape `pypi_attestations.Provenance`.

    Raises:
        UpstreamError: it is not.
    """
    try:
        Provenance.model_validate(json.loads(document))
    except (ValueError, RecursionError) as exc:  # json's errors and ValidationError
        reason = _first_error(exc) if isinstance(exc, ValidationError) else f"not JSON ({exc})"
        _malformed(upstream, filename, reason)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"not a provenance object: {where}: {first['msg']}{more}"


def _malformed(upstream: str, filename: str, reason: str) -> NoReturn:
    raise UpstreamError(
        upstream, f"served a malformed provenance document for {filename}: {reason}"
    )


def _identity(upstream: str, url: str, dist: DistFile) -> str:
    key = json.dumps([upstream, url, dist.filename, (dist.sha256 or "").lower()])
    return IDENTITY_PREFIX + hashlib.sha256(key.encode()).hexdigest()


async def _read_blob(store: BlobStore, entry: ExtractedMetadata) -> bytes | None:
    """The kept bytes, or None if the blob is gone or is not what was kept.

    Raises:
        OSError: the store could not be read.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in store.read(entry.key, None):
            size += len(chunk)
            if size > MAX_PROVENANCE_BYTES:
                return None
            chunks.append(chunk)
    except FileNotFoundError:
        return None
    body = b"".join(chunks)
    return body if hashlib.sha256(body).hexdigest() == entry.sha256 else None


def _select(sessions: sessionmaker[Session], identity: str) -> ExtractedMetadata | None:
    with sessions() as session:
        row = session.execute(
            select(KeptProvenance.sha256, KeptProvenance.blob_key).where(
                KeptProvenance.identity == identity
            )
        ).one_or_none()
    return None if row is None else ExtractedMetadata(row.sha256, row.blob_key)


def _insert(
    sessions: sessionmaker[Session], project: str, identity: str, entry: ExtractedMetadata
) -> None:
    """The index row; one another replica inserted first is left as it is."""
    with sessions.begin() as session:
        row = {
            "identity": identity,
            "project": project,
            "sha256": entry.sha256,
            "blob_key": entry.key,
            "created_at": datetime.now(UTC),
        }
        insert = upsert(session, KeptProvenance).values(row)
        session.execute(insert.on_conflict_do_nothing(index_elements=["identity"]))
