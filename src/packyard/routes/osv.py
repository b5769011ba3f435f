"""`/osv/v1/…`: osv.dev's API over the imported advisories, for the standard auditors.

    uv audit --service-url https://packyard.example/osv/
    pip-audit -s osv --osv-url https://packyard.example/osv/v1/query

Three endpoints, answering as api.osv.dev's do for the PyPI ecosystem
(osv.dev's docs/api/ and its `osv_service_v1.proto`):

- `POST /osv/v1/query`: one query (`advisories/queries.py`); the full records
  that affect the version, or every record of the package without one:
  `{"vulns": [record, ...]}`, or `{}` when none does (protobuf's JSON mapping
  leaves an empty list out, and pip-audit tests for the empty object).
- `POST /osv/v1/querybatch`: up to 1,000 queries; per query, in order, the ids
  and `modified` times of its records: `{"results": [{"vulns": [{"id",
  "modified"}]}, {}, ...]}` (uv asks this, then fetches each record once).
- `GET /osv/v1/vulns/{id}`: the record as imported, withdrawn or not
  (`advisories/stored.py`). An alias (a CVE id) is not resolved, as on
  osv.dev: the 404 names the records that carry it.

Queries are answered from the in-memory index (`advisories/index.py`), as of
the store's serial: a batch of 500 packages costs a few milliseconds
(bench/osv_api.py). Withdrawn records are not in it, so no query returns one.
No answer is paginated: `next_page_token` is never set.

Errors are osv.dev's JSON, `{"code": <gRPC status code>, "message": ...}`:
400 (code 3) for a body that is not JSON or a query osv.dev would refuse, 404
(code 5) for an unknown id or path, 405 for a wrong method, 413 for a body
over `MAX_BODY_BYTES`, 503 (code 14) while the database cannot be read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Final, Protocol

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from packyard.advisories.index import Advisories
from packyard.advisories.queries import Query, QueryRejected, read_batch, read_query
from packyard.advisories.records import OsvRecord
from packyard.advisories.stored import aliased_by, stored_record
from packyard.publish.multipart import discard_body
from packyard.routes.asgi import request_header, send_response
from packyard.routes.simple import local_path

PREFIX: Final = "/osv/v1/"
QUERY: Final = PREFIX + "query"
BATCH: Final = PREFIX + "querybatch"
VULNS: Final = PREFIX + "vulns/"
MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # 1,000 queries take well under 1 MiB
MAX_ID_LENGTH: Final = 100  # osv.dev's
# gRPC status codes, which osv.dev's error bodies carry.
INVALID_ARGUMENT: Final = 3
NOT_FOUND: Final = 5
RESOURCE_EXHAUSTED: Final = 8
UNIMPLEMENTED: Final = 12
UNAVAILABLE: Final = 14
_JSON: Final = (b"content-type", b"application/json")
_USAGE: Final = (
    "The OSV API is POST /osv/v1/query, POST /osv/v1/querybatch and GET /osv/v1/vulns/{id}."
)


class AdvisorySource(Protocol):
    """`advisories.index.AdvisoryIndexReader`: the records in force, as of the store's serial."""

    async def current(self) -> Advisories:
        """Raises sqlalchemy.exc.SQLAlchemyError or sqlite3.Error when the database cannot
        be read, LookupError when it was never migrated."""
        ...


class ApiRefusal(Exception):
    """An answer other than 200, with osv.dev's JSON error body."""

    def __init__(
        self, status: int, code: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers)


class ClientGone(Exception):
    """The client closed the connection before its body ended: nobody to answer."""


class OsvRoute:
    """ASGI handler of every path under `/osv/` (see the module's docstring)."""

    def __init__(self, advisories: AdvisorySource, sessions: sessionmaker[Session]) -> None:
        self._advisories = advisories
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = local_path(scope)
        method: str = scope["method"]
        try:
            if path in (QUERY, BATCH):
                body = await self._post(scope, receive, path)
            elif path.startswith(VULNS):
                body = await self._record(scope, receive, path[len(VULNS) :])
            else:
                await _drain(scope, receive)
                raise ApiRefusal(404, NOT_FOUND, f"No OSV API at {path}. {_USAGE}")
        except ClientGone:
            return
        except ApiRefusal as refusal:
            headers = [_JSON, (b"cache-control", b"no-store"), *refusal.headers]
            error = {"code": refusal.code, "message": refusal.message}
            await send_response(send, refusal.status, headers, _dumps(error), head=method == "HEAD")
            return
        await send_response(
            send, 200, [_JSON, (b"cache-control", b"no-cache")], body, head=method == "HEAD"
        )

    async def _post(self, scope: Scope, receive: Receive, path: str) -> bytes:
        if scope["method"] != "POST":
            await _drain(scope, receive)
            raise ApiRefusal(
                405, UNIMPLEMENTED, f"{path} takes POST. {_USAGE}", [(b"allow", b"POST")]
            )
        raw = _json(await _read_body(scope, receive))
        try:
            if path == QUERY:
                return _dumps(query_answer(await self._current(), read_query(raw)))
            return _dumps(batch_answer(await self._current(), read_batch(raw)))
        except QueryRejected as exc:
            raise ApiRefusal(400, INVALID_ARGUMENT, str(exc)) from None

    async def _record(self, scope: Scope, receive: Receive, advisory_id: str) -> bytes:
        if scope["method"] not in ("GET", "HEAD"):
            await _drain(scope, receive)
            allow = [(b"allow", b"GET, HEAD")]
            raise ApiRefusal(405, UNIMPLEMENTED, f"{VULNS}{{id}} takes GET. {_USAGE}", allow)
        if not advisory_id:
            raise ApiRefusal(400, INVALID_ARGUMENT, "ID is required: GET /osv/v1/vulns/{id}")
        if len(advisory_id) > MAX_ID_LENGTH:
            raise ApiRefusal(400, INVALID_ARGUMENT, f"ID is too long (over {MAX_ID_LENGTH})")
        try:
            record, aliases = await anyio.to_thread.run_sync(self._lookup, advisory_id)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        if record is not None:
            return record.encode()
        message = "Vulnerability not found"
        if aliases:
            message += ", but the following aliases were: " + " ".join(aliases)
        raise ApiRefusal(404, NOT_FOUND, message)

    def _lookup(self, advisory_id: str) -> tuple[str | None, list[str]]:
        """The record of `advisory_id`, else the ids of the records aliasing it."""
        with self._sessions() as session:
            record = stored_record(session, advisory_id)
            return record, [] if record is not None else aliased_by(session, advisory_id)

    async def _current(self) -> Advisories:
        try:
            return await self._advisories.current()
        except (SQLAlchemyError, sqlite3.Error, LookupError) as exc:  # `SerialWatcher.current`'s
            raise _unavailable(exc) from None


def matching(advisories: Advisories, query: Query) -> tuple[OsvRecord, ...]:
    """The records in force that answer `query`, by id."""
    if query.name is None:
        return ()
    records = advisories.for_project(query.name)
    # Only names with records reach `affecting`, whose memo is bounded: a
    # stream of made-up names costs nothing to remember.
    if not records or query.version is None:
        return records
    return advisories.affecting(query.name, query.version)


def query_answer(advisories: Advisories, query: Query) -> dict[str, object]:
    """`POST /v1/query`'s answer: the full records, or `{}`."""
    records = matching(advisories, query)
    return {"vulns": [record.data for record in records]} if records else {}


def batch_answer(advisories: Advisories, queries: Sequence[Query]) -> dict[str, object]:
    """`POST /v1/querybatch`'s answer: per query, in order, ids and `modified` only."""
    results: list[dict[str, object]] = []
    for query in queries:
        records = matching(advisories, query)
        # `modified` as the record itself says it (RFC 3339 text, `records.read_record`
        # checked it), so that it matches the record `/vulns/{id}` serves.
        vulns = [{"id": record.id, "modified": record.data["modified"]} for record in records]
        results.append({"vulns": vulns} if vulns else {})
    return {"results": results} if results else {}


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole request body, refused past `MAX_BODY_BYTES` (413)."""
    declared = request_header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await discard_body(receive)
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if message.get("more_body", False):
                await discard_body(receive)
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json(body: bytes) -> object:
    if not body.strip():
        raise ApiRefusal(
            400, INVALID_ARGUMENT, "invalid query: the body is empty: send a JSON query"
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiRefusal(
            400, INVALID_ARGUMENT, f"invalid query: the body is not JSON: {exc}"
        ) from None


async def _drain(scope: Scope, receive: Receive) -> None:
    """Drop the body of a request refused before reading it (GET and HEAD have none)."""
    if scope["method"] not in ("GET", "HEAD"):
        await discard_body(receive)


def _too_large() -> ApiRefusal:
    return ApiRefusal(
        413,
        RESOURCE_EXHAUSTED,
        f"The body is over {MAX_BODY_BYTES} bytes: send at most 1000 queries per batch.",
    )


def _unavailable(exc: Exception) -> ApiRefusal:
    message = f"The advisory database cannot be read now ({type(exc).__name__}); try again shortly."
    return ApiRefusal(503, UNAVAILABLE, message, [(b"retry-after", b"30")])


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
