"""Path safety for `/files/<project>/<filename>`: which request paths name a file.

The segments of a file URL may reach a storage key or a path on disk, so a
path is refused, as a 404, unless exactly two plain segments follow `/files/`:
no hidden separator (`%2F`, `%5C`), no empty, `.` or `..` segment, no control
character and no drive colon. The project segment must also be a valid
project name, at most MAX_NAME_LENGTH characters; it is returned normalised.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from packaging.utils import canonicalize_name
from starlette.types import Scope

from packyard.dists.filenames import MAX_NAME_LENGTH, TOO_LONG_NAME
from packyard.errors import InvalidName, NotFound

PREFIX = b"/files/"
# STANDARDS §1.1 (name normalization spec); ASCII-only, so that IGNORECASE
# cannot let the Kelvin sign stand in for "k".
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)
# Control characters (C0, DEL, C1), separators and a drive colon never occur in
# a distribution filename and could reach a storage path: refuse them.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:]")
_NOT_FOUND = "Not found: file URLs have the form /files/<project>/<filename>."


def parse_file_path(scope: Scope) -> tuple[str, str]:
    """The normalised project name and the filename of a `/files/` request.

    Reads `raw_path` when the server gives it, so that `%2F` and `%5C` (a
    slash hidden from path splitting) can be refused, else `path`. Exactly
    two safe segments must follow `/files/`. A project segment that is valid
    but not normalised is served as is (pages link only the normalised form;
    redirecting a file URL would break tools that do not follow redirects).

    Raises:
        NotFound: not two segments, an empty, `.`, `..` or unsafe segment, or a
            project segment longer than MAX_NAME_LENGTH.
        InvalidName: the project segment is not a valid project name (404).
    """
    raw: bytes | None = scope.get("raw_path")
    path = raw if raw is not None else scope["path"].encode("utf-8", "surrogateescape")
    root = scope.get("root_path", "").encode("utf-8", "surrogateescape")
    if root and path.startswith(root + PREFIX):
        path = path[len(root) :]
    if not path.startswith(PREFIX) or (raw is not None and _hides_separator(raw)):
        raise NotFound(_NOT_FOUND)
    segments = path[len(PREFIX) :].split(b"/")
    if len(segments) != 2:
        raise NotFound(_NOT_FOUND)
    project, filename = (_segment(part, decode=raw is not None) for part in segments)
    if len(project) > MAX_NAME_LENGTH:
        raise NotFound(TOO_LONG_NAME)
    if not _VALID_NAME.fullmatch(project):
        raise InvalidName(project)
    return canonicalize_name(project), filename


def _hides_separator(raw: bytes) -> bool:
    lowered = raw.lower()
    return b"%2f" in lowered or b"%5c" in lowered


def _segment(part: bytes, *, decode: bool) -> str:
    """One path segment as text: percent-decoded if raw, UTF-8, and safe."""
    try:
        text = (unquote_to_bytes(part) if decode else part).decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound(_NOT_FOUND) from None
    if text in ("", ".", "..") or _UNSAFE.search(text):
        raise NotFound(_NOT_FOUND)
    return text
