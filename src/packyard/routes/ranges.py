"""RFC 9110 conditional and range requests for the `/files/` route.

Pure functions over request header values (lower-case names, latin-1
decoded, repeated fields joined with ", " as RFC 9110 §5.3 allows) and the
validators of the file being served. Nothing here does I/O.

Every served file is immutable (a filename is never reused), so its sha256
is a strong entity-tag and its modification time, at one-second resolution,
a strong Last-Modified validator (RFC 9110 §8.8.2.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from packyard.model import ByteRange

# RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length.
_RANGE_SPEC = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)")
# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE.
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')
# Longer numbers are larger than any file; capping them keeps `int()` cheap and
# inside Python's int-from-string digit limit.
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS


@dataclass(frozen=True, slots=True)
class Validators:
    """The validators of one file: a strong ETag and a Last-Modified date, each optional."""

    etag: str | None
    last_modified: datetime | None

    @classmethod
    def of(cls, sha256: str | None, modified: datetime | None) -> Validators:
        """ETag `"<sha256>"`; Last-Modified in UTC, truncated to whole seconds.

        A naive `modified` is taken to be UTC.
        """
        etag = f'"{sha256}"' if sha256 else None
        if modified is None:
            return cls(etag, None)
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return cls(etag, modified.astimezone(UTC).replace(microsecond=0))


def format_http_date(moment: datetime) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date as an aware UTC datetime, or None if absent or unparsable.

    RFC 9110 §13.1.3 and §13.1.4: an invalid date makes the header ignored.
    """
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def precondition_status(headers: Mapping[str, str], validators: Validators) -> int | None:
    """Evaluate the preconditions of a GET or HEAD in RFC 9110 §13.2.2 order.

    Returns:
        412 when If-Match or If-Unmodified-Since fails, 304 when If-None-Match
        or If-Modified-Since finds the client's copy current, else None (serve).
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        # §13.1.1: strong comparison; no current ETag means no match.
        if not _etag_listed(if_match, validators.etag, weak=False):
            return 412
    elif _modified_after(validators, headers.get("if-unmodified-since")):
        return 412  # §13.1.4
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        # §13.1.2: weak comparison; If-Modified-Since is then ignored (§13.1.3).
        return 304 if _etag_listed(if_none_match, validators.etag, weak=True) else None
    since = parse_http_date(headers.get("if-modified-since"))
    last = validators.last_modified
    if since is not None and last is not None and last <= since:
        return 304
    return None


def requested_range(
    headers: Mapping[str, str], validators: Validators, size: int
) -> ByteRange | None:
    """The byte range a GET asks for, or None to send the whole file with 200.

    The Range header is ignored (None) when it is syntactically invalid, names
    another unit, asks for more than one range, or an If-Range does not match
    (RFC 9110 §14.2, §13.1.5). Only call this for GET: §14.2 defines range
    handling for no other method.

    Raises:
        RangeNotSatisfiable: a single valid range that lies outside the file (416).
    """
    value = headers.get("range")
    if value is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_matches(if_range, validators):
        return None
    spec = parse_range(value)
    if spec is None:
        return None
    return ByteRange.clamp(spec[0], spec[1], size)


def parse_range(value: str) -> tuple[int | None, int | None] | None:
    """Parse a Range header holding one byte range (RFC 9110 §14.1.1, §14.2).

    Returns:
        `(first, last)` for `bytes=first-last`, `(first, None)` for `bytes=first-`,
        `(None, length)` for the suffix `bytes=-length`; None when the header is
        to be ignored: not `bytes`, invalid, or several ranges. Answering a
        multi-range request with the whole file is allowed (a server MAY ignore
        Range) and spares every client a multipart/byteranges body.
    """
    unit, equals, range_set = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    # §5.6.1: a list may hold empty elements and whitespace around commas.
    specs = [spec.strip() for spec in range_set.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return None, _number(suffix)
    start = _number(first)
    end = _number(last) if last else None
    if end is not None and end < start:
        return None  # §14.1.1: last-pos below first-pos makes the range set invalid
    return start, end


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else _HUGE


def _etag_listed(header: str, etag: str | None, *, weak: bool) -> bool:
    """Whether `etag` is in an If-Match / If-None-Match list, or the list is `*`."""
    if header.strip() == "*":
        return True  # matches any current representation, and this one exists
    if etag is None:
        return False
    for weak_prefix, opaque in _ENTITY_TAG.findall(header):
        # §8.8.3.2: a strong comparison fails if either tag is weak.
        if opaque == etag and (weak or not weak_prefix):
            return True
    return False


def _modified_after(validators: Validators, header: str | None) -> bool:
    """If-Unmodified-Since fails: the file changed after the given date (§13.1.4)."""
    since = parse_http_date(header)
    last = validators.last_modified
    return since is not None and last is not None and last > since


def _if_range_matches(value: str, validators: Validators) -> bool:
    """RFC 9110 §13.1.5: an entity-tag matches only strongly; a date only exactly."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return validators.etag is not None and value == validators.etag
    date = parse_http_date(value)
    return date is not None and date == validators.last_modified
