"""PEP 503 HTML and PEP 691 JSON writers for the simple API.

Both writers turn a `ProjectList` or `ProjectDetail` into the bytes of a
page; the HTTP edge renders a page once and reuses the bytes while the chain
returns the same object. The helpers here are the rules both formats share,
so that an HTML page and a JSON page of one project always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from packyard.model import DistFile, ProjectDetail

API_VERSION = "1.4"
"""PEP 629 repository version. PEP 833 freezes HTML at 1.4 (STANDARDS §0)."""

# uv rejects URL-fragment hash names other than md5, sha256, sha384, sha512 and
# blake2b (STANDARDS §1.12); the SRA says to use sha256. Best first.
FRAGMENT_HASHES = ("sha256", "sha512", "sha384", "md5")

_HEX = frozenset("0123456789abcdefABCDEF")


def file_url(project: str, filename: str) -> str:
    """The URL of a file, relative to the project page `/simple/<project>/`.

    It always points at this server's `/files/` route, never at the source
    (DESIGN §2). `+` and `!` (local versions, epochs) stay literal, as pip and
    uv expect; anything else unsafe is percent-encoded, so a hostile filename
    cannot break out of the path.
    """
    return f"../../files/{project}/{quote(filename, safe='!+')}"


def fragment_hash(hashes: Mapping[str, str]) -> tuple[str, str] | None:
    """The (name, hex) to put in an HTML link's `#<name>=<hex>` fragment, if any.

    Only names every installer understands, and only well-formed hex digests.
    """
    for name in FRAGMENT_HASHES:
        value = hashes.get(name)
        if value and _HEX.issuperset(value):
            return name, value.lower()
    return None


def metadata_hash(core_metadata: bool | Mapping[str, str]) -> tuple[str, str] | None:
    """The (name, hex) of a PEP 658 metadata file's hash, if one is known."""
    if isinstance(core_metadata, bool):
        return None
    return fragment_hash(core_metadata)


def has_metadata(core_metadata: bool | Mapping[str, str]) -> bool:
    """Whether a `.metadata` file is advertised (PEP 658): True or any mapping."""
    return core_metadata is True or not isinstance(core_metadata, bool)


def provenance_url(project: ProjectDetail, dist: DistFile, site_url: str | None) -> str | None:
    """The PEP 740 `provenance` URL to serve for `dist`, if it has provenance.

    PEP 740 asks for an absolute URL: `site_url` is this site's (ending in
    `/`); without it, None. Always this server's `/integrity/` route, whatever
    the source's URL (`DistFile.provenance`): served pages never link clients
    to another host (DESIGN §2).
    """
    if not dist.provenance or site_url is None:
        return None
    version = file_version(dist.filename)
    if version is None:
        return None
    path = "/".join(quote(part, safe="!+") for part in (project.name, version, dist.filename))
    return f"{site_url}integrity/{path}/provenance"


def upload_time(moment: datetime) -> str:
    """`yyyy-mm-ddThh:mm:ss.ffffffZ` in UTC (SRA §JSON; a naive value is taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_version(filename: str) -> str | None:
    """The version in a wheel or sdist filename, or None if it does not parse."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:  # InvalidWheelFilename, InvalidSdistFilename, InvalidVersion
        return None


def all_versions(project: ProjectDetail) -> list[str]:
    """`project.versions` plus every version found in a filename, sorted (PEP 700).

    PEP 700: every file's version MUST be in `versions`. Strings are kept as
    given; parseable versions sort by PEP 440, unparseable ones after them.
    """
    found = dict.fromkeys(project.versions)
    found.update(dict.fromkeys(_file_versions(project.files)))
    return sorted(found, key=_version_order)


def _file_versions(files: Iterable[DistFile]) -> Iterable[str]:
    for dist in files:
        version = file_version(dist.filename)
        if version is not None:
            yield version


def _version_order(version: str) -> tuple[int, Version | str]:
    try:
        return 0, Version(version)
    except InvalidVersion:
        return 1, version
