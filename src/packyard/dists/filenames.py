"""Distribution filenames: what a wheel's or sdist's name says about it.

Parsing is `packaging`'s (`parse_wheel_filename`, `parse_sdist_filename`);
this module adds the checks an index needs before a name is used as a
storage key or shown in a page (STANDARDS §2.12: no control characters, no
`/` or `\\`, and only the `.whl`, `.tar.gz` and `.zip` extensions).

Older sdist names such as `Foo-Bar-1.0.tar.gz` are accepted here (the
importer takes existing archives); the stricter PEP 625 spelling is the
upload path's rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from packyard.errors import InvalidDistribution

PackageType = Literal["bdist_wheel", "sdist"]
MAX_FILENAME_LENGTH = 255  # a single path segment on every common file system
# The longest project name served or accepted. The name-normalization spec sets
# none, but a name becomes a path segment (page caches, wheel filenames), which
# file systems cap at 255 bytes; longer names are refused at the edge (a 404),
# never passed on to end in ENAMETOOLONG.
MAX_NAME_LENGTH = 200
TOO_LONG_NAME = f"No such project: project names are at most {MAX_NAME_LENGTH} characters."
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


@dataclass(frozen=True, slots=True)
class DistFilename:
    """A parsed distribution filename."""

    filename: str
    name: NormalizedName
    version: Version
    packagetype: PackageType
    # The python tag of a wheel (`py3`, `cp312`, `py2.py3`), `source` for an sdist,
    # the values twine sends as `pyversion`.
    python_version: str


def parse_filename(filename: str) -> DistFilename:
    """Parse a wheel or sdist filename.

    Raises:
        InvalidDistribution: the name is empty, too long, contains a path
            separator, a control character or `..`, starts with a dot, has an
            extension other than `.whl`, `.tar.gz` or `.zip`, or does not parse.
    """
    _check_safe(filename)
    if filename.endswith(".whl"):
        return _parse_wheel(filename)
    if filename.endswith((".tar.gz", ".zip")):
        return _parse_sdist(filename)
    raise InvalidDistribution(
        f"Invalid file extension: {filename!r}. Use .whl for wheels and .tar.gz "
        "(or .zip) for source distributions."
    )


def _check_safe(filename: str) -> None:
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidDistribution(
            f"Invalid filename {filename!r}: it must have 1 to {MAX_FILENAME_LENGTH} characters."
        )
    if _UNSAFE.search(filename) or ".." in filename or filename.startswith("."):
        raise InvalidDistribution(
            f"Invalid filename {filename!r}: it may not contain '/', '\\', '..' or "
            "control characters, nor start with '.'."
        )


def _parse_wheel(filename: str) -> DistFilename:
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidDistribution(f"Invalid wheel filename {filename!r}: {exc}") from exc
    # name-version[-build]-python-abi-platform.whl: the python tag is third from the end.
    python_tag = filename.removesuffix(".whl").split("-")[-3]
    return DistFilename(filename, name, version, "bdist_wheel", python_tag)


def _parse_sdist(filename: str) -> DistFilename:
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise InvalidDistribution(f"Invalid sdist filename {filename!r}: {exc}") from exc
    return DistFilename(filename, name, version, "sdist", "source")
