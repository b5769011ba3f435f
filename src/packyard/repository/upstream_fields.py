"""The fields of a file entry on an upstream page, read leniently.

Each reader takes what a PEP 691 JSON key or a PEP 503 HTML attribute holds
and returns the model's value, or None (or False, or an empty mapping) when
the value is absent or unreadable: the upstream is not trusted, and a bad
field must never fail a page. `upstream_pages` assembles the entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

# What distribution files look like: wheels and sdists (PEP 427, PEP 625), then
# the legacy formats PyPI once accepted. Anything else on a page is dropped.
MODERN_SUFFIXES = (".whl", ".tar.gz", ".zip")
LEGACY_SUFFIXES = (".tar.bz2", ".tar.xz", ".tgz", ".egg", ".exe", ".msi", ".rpm")
DIST_SUFFIXES = MODERN_SUFFIXES + LEGACY_SUFFIXES
_HEX = re.compile(r"[0-9a-fA-F]+")
_HASH_NAME = re.compile(r"[a-z0-9_]{1,32}")
_DIGITS = re.compile(r"[0-9]{1,18}")
_UNSAFE_CHAR = re.compile(r"[\x00-\x20\x7f/\\]")

Attributes = Mapping[str, str | None]
"""The attributes of an HTML tag, as `html.parser` gives them."""


# --- HTML ------------------------------------------------------------------------


def html_yanked(attrs: Attributes) -> bool | str:
    """PEP 592: `data-yanked` present = yanked; its value, if any, is the reason."""
    if "data-yanked" not in attrs:
        return False
    return text_value(attrs["data-yanked"]) or True


def html_core_metadata(value: str | None) -> bool | Mapping[str, str] | None:
    """PEP 658: `true` or `<hashname>=<hex>`; None when absent or unreadable."""
    if value is None:
        return None
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return fragment_hashes(value) or None


# --- JSON ------------------------------------------------------------------------


def json_yanked(value: object) -> bool | str:
    """PEP 592/691: a bool or a reason; an empty reason still means yanked (as pip reads it)."""
    if isinstance(value, str):
        return value if value.strip() else True
    if isinstance(value, bool | int | float):
        return bool(value)
    return False


def json_core_metadata(value: object) -> bool | Mapping[str, str] | None:
    """PEP 691/714: a bool or `{hashname: hex}`; None when absent or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return json_hashes(value) or True
    return None


def json_hashes(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    hashes = {}
    for algorithm, digest in value.items():
        if isinstance(algorithm, str) and isinstance(digest, str) and _is_hash(algorithm, digest):
            hashes[algorithm.lower()] = digest.lower()
    return hashes


# --- both formats ---------------------------------------------------------------


def is_dist_filename(filename: str) -> bool:
    """A bare filename of a distribution: no path, no control characters, no `..`."""
    return (
        0 < len(filename) <= 255
        and not _UNSAFE_CHAR.search(filename)
        and ".." not in filename
        and not filename.startswith(".")
        and filename.lower().endswith(DIST_SUFFIXES)
    )


def locate(href: object, base: str) -> tuple[str, str] | None:
    """The absolute http(s) URL, without its fragment, and the fragment.

    SRA: URLs may be relative; they resolve against the page (or `<base href>`).
    """
    if not isinstance(href, str) or not href.strip():
        return None
    try:
        parts = urlsplit(urljoin(base, href.strip()))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0:
            return None
    except ValueError:  # a malformed IPv6 host or port
        return None
    return urlunsplit(parts._replace(fragment="")), parts.fragment


def absolute_url(value: object) -> str | None:
    """An absolute http(s) URL, without its fragment; None for anything else.

    PEP 740: a `provenance` URL is fully qualified (a relative one is not
    resolved against the page, unlike a file's URL).
    """
    located = locate(value, "")
    return located[0] if located is not None else None


def fragment_hashes(fragment: str) -> dict[str, str]:
    """PEP 503: `#<hashname>=<hex>` (any other fragment is ignored)."""
    algorithm, sep, digest = fragment.strip().partition("=")
    return {algorithm.lower(): digest.lower()} if sep and _is_hash(algorithm, digest) else {}


def _is_hash(algorithm: str, digest: str) -> bool:
    return bool(_HASH_NAME.fullmatch(algorithm.lower()) and _HEX.fullmatch(digest))


def text_value(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def size(value: object) -> int | None:
    """SRA: `size` is an int; an integral float or a digit string is accepted too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def upload_time(value: object) -> datetime | None:
    """SRA: ISO 8601 in UTC (`...Z`); a time without zone is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not ISO 8601, or out of datetime's range
        return None
