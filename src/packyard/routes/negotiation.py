"""PEP 691 content negotiation for the simple API.

The rules (SRA §Version + Format Selection, STANDARDS §1.7-1.10):

- Three types are served: `application/vnd.pypi.simple.v1+json`,
  `application/vnd.pypi.simple.v1+html`, and `text/html`, an alias of v1+html.
  A request for `…latest+json` / `…latest+html` gets the concrete v1 type.
- q-values decide (missing = 1, up to 3 decimals, q=0 = "not this one");
  the order of the header does not. Parameters other than q are ignored.
  For each type, the most specific matching range gives its q (RFC 9110
  §12.5.1).
- No Accept header means `*/*`, and `*/*` gets `text/html`, as Warehouse
  does: hatch sends no Accept and regex-parses HTML. So among equal q, a type
  the client *names* beats one it only reaches through a wildcard; among
  named types v1+json beats v1+html beats text/html ("text/html only as a
  last resort"); among wildcard-only types HTML comes first.
- `?format=<type>` overrides Accept (SRA §URL Parameter); its value is read
  like an Accept header.
- Nothing acceptable: `NotAcceptable` (406, the SRA's recommendation).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from urllib.parse import parse_qsl

from packyard.errors import NotAcceptable

_JSON = "application/vnd.pypi.simple.v1+json"
_HTML = "application/vnd.pypi.simple.v1+html"


class MediaType(enum.Enum):
    """A representation of a simple-API page, best first on a tie of named types."""

    JSON = _JSON
    HTML = _HTML
    TEXT_HTML = "text/html"

    @property
    def is_json(self) -> bool:
        return self is MediaType.JSON

    @property
    def content_type(self) -> bytes:
        """The exact `Content-Type` to send: the type the client matched."""
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    MediaType.JSON: _JSON.encode(),
    MediaType.HTML: _HTML.encode(),
    MediaType.TEXT_HTML: b"text/html; charset=utf-8",
}

# The media ranges that name each type exactly (PEP 691 `latest` aliases included).
_NAMES = {
    MediaType.JSON: frozenset({_JSON, "application/vnd.pypi.simple.latest+json"}),
    MediaType.HTML: frozenset({_HTML, "application/vnd.pypi.simple.latest+html"}),
    MediaType.TEXT_HTML: frozenset({"text/html"}),
}
# Tie-breaks at equal q: rank among named types, and among wildcard-only types.
_NAMED_RANK = {MediaType.JSON: 3, MediaType.HTML: 2, MediaType.TEXT_HTML: 1}
_WILDCARD_RANK = {MediaType.TEXT_HTML: 3, MediaType.HTML: 2, MediaType.JSON: 1}

SUPPORTED = ", ".join(t.value for t in MediaType)


def negotiate(accept: bytes | None, query_string: bytes = b"") -> MediaType:
    """The type to answer a request with.

    Args:
        accept: the raw Accept header, or None when the request has none.
        query_string: the raw query string; a `format` parameter overrides `accept`.

    Raises:
        NotAcceptable: no supported type is acceptable; the message lists them.
    """
    if query_string and b"format=" in query_string:
        for key, value in parse_qsl(query_string.decode("latin-1")):
            if key == "format":
                # An unencoded `+` in the query string arrives as a space.
                accept = value.replace(" ", "+").encode("latin-1")
    chosen = _choose(accept)
    if chosen is None:
        shown = "none" if accept is None else repr(accept.decode("latin-1"))
        raise NotAcceptable(
            f"No acceptable representation for Accept: {shown}. This index serves: {SUPPORTED}."
        )
    return chosen


@lru_cache(maxsize=256)
def _choose(accept: bytes | None) -> MediaType | None:
    # Cached per distinct header: a handful of clients send a handful of strings.
    ranges = _parse(accept.decode("latin-1")) if accept is not None else []
    if not ranges:
        ranges = [("*/*", 1.0)]  # No (usable) Accept header means */* (SRA).
    best: tuple[float, int, int] = (0.0, 0, 0)
    chosen = None
    for media_type in MediaType:
        q, named = _quality(media_type, ranges)
        rank = _NAMED_RANK[media_type] if named else _WILDCARD_RANK[media_type]
        score = (q, int(named), rank)
        if q > 0 and score > best:
            best, chosen = score, media_type
    return chosen


def _quality(media_type: MediaType, ranges: list[tuple[str, float]]) -> tuple[float, bool]:
    """The q of the most specific range matching `media_type`, and whether it names it."""
    major = media_type.value.split("/", 1)[0]
    best_specificity, best_q = 0, 0.0
    for media_range, q in ranges:
        if media_range in _NAMES[media_type]:
            specificity = 3
        elif media_range == f"{major}/*":
            specificity = 2
        elif media_range == "*/*":
            specificity = 1
        else:
            continue
        if (specificity, q) > (best_specificity, best_q):
            best_specificity, best_q = specificity, q
    return best_q, best_specificity == 3


def _parse(header: str) -> list[tuple[str, float]]:
    """(media range, q) pairs; malformed elements are skipped, not fatal."""
    ranges = []
    for element in header.split(","):
        media_range, *params = element.split(";")
        media_range = media_range.strip().lower()
        if media_range == "*":
            media_range = "*/*"  # Sent by old Java clients; means any type.
        if "/" not in media_range:
            continue
        q = _q_value(params)
        if q is not None:
            ranges.append((media_range, q))
    return ranges


def _q_value(params: list[str]) -> float | None:
    """The q parameter (1 if missing), rounded to 3 decimals; None if malformed."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return round(q, 3) if 0.0 <= q <= 1.0 else None
    return 1.0
