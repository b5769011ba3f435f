"""The one table that maps domain errors to HTTP status codes (STYLE §5)."""

from __future__ import annotations

from packyard.errors import (
    AuthenticationFailed,
    Conflict,
    DatabaseUnavailable,
    FileDenied,
    InvalidDistribution,
    InvalidName,
    InvalidRequest,
    NotAcceptable,
    NotFound,
    Overloaded,
    PackyardError,
    PermissionDenied,
    RangeNotSatisfiable,
    StorageFull,
    StoreUnavailable,
    TooManyFailures,
    UpstreamError,
    UpstreamUnavailable,
)
from packyard.reason_phrase import REASON_HEADER, reason_phrase
from packyard.routes.asgi import Headers

# Checked in order: the first class that matches wins, so subclasses come first.
STATUS_BY_ERROR: tuple[tuple[type[PackyardError], int], ...] = (
    (InvalidName, 404),
    (FileDenied, 403),
    (NotFound, 404),
    (UpstreamUnavailable, 503),
    (UpstreamError, 502),
    (StorageFull, 507),
    (DatabaseUnavailable, 503),
    (StoreUnavailable, 503),
    (NotAcceptable, 406),
    (RangeNotSatisfiable, 416),
    (InvalidDistribution, 400),
    (InvalidRequest, 400),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (Conflict, 409),
    (TooManyFailures, 429),
    (Overloaded, 503),
)


def status_for(error: PackyardError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_parts(error: PackyardError) -> tuple[int, Headers, bytes]:
    """Status, headers and a plain-text body that a person can act on."""
    status = status_for(error)
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    if isinstance(error, RangeNotSatisfiable):
        headers.append((b"content-range", f"bytes */{error.size}".encode()))
    if isinstance(error, FileDenied):
        # pip and uv print the status line of a refused download, not its body.
        headers.append((REASON_HEADER, reason_phrase(error.message)))
    headers += retry_headers(error)
    return status, headers, (error.message + "\n").encode()


def retry_headers(error: PackyardError) -> Headers:
    """`Retry-After` for an upstream or a blob store that is down (RFC 9110 §10.2.3:
    a 503 may say when to come back), for too many failed sign-ins (RFC 6585 §4)
    and for a server too busy to check a password now, else nothing. Every edge
    that answers an error without `error_parts` (the upload endpoint) adds these."""
    if isinstance(error, TooManyFailures | Overloaded):
        return [(b"retry-after", str(max(1, error.retry_after)).encode())]
    if isinstance(error, StorageFull):
        return []  # not gone in a moment: it waits for an operator
    if isinstance(error, DatabaseUnavailable):
        return [(b"retry-after", str(error.RETRY_AFTER).encode())]
    if isinstance(error, UpstreamUnavailable | StoreUnavailable):
        return [(b"retry-after", b"30")]
    return []
