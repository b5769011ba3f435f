"""Core metadata inside a distribution: a wheel's METADATA, an sdist's PKG-INFO.

`read_core_metadata` returns the file's exact bytes (PEP 658 serves them
unchanged: pip 26.3 compares the `.metadata` file with the wheel's own,
STANDARDS §1.14) together with the few fields the index needs, parsed by
`packaging.metadata`, and checks that name and version agree with the
filename.

Archives come from outside, so reading is bounded: the metadata member may
not exceed `MAX_METADATA_SIZE` (declared or actual), an sdist's tar stream is
scanned only up to `MAX_SCANNED_BYTES` and `MAX_MEMBERS`, and every archive
or decoding failure becomes `InvalidDistribution`.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.dists.filenames import DistFilename
from packyard.errors import InvalidDistribution

MAX_METADATA_SIZE = 10 * 1024 * 1024
MAX_SCANNED_BYTES = 2 * 1024**3  # uncompressed tar bytes walked past to find PKG-INFO
MAX_MEMBERS = 100_000
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_NAMES_EXTRA = re.compile(r"\bextra\b")
# Name-normalization spec: the valid project names.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
# Everything a broken or hostile archive can raise while being read.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,  # zip: unsupported compression method
    RuntimeError,  # zip: encrypted member
    ValueError,
)


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """The metadata file of a distribution: its exact bytes and the fields used here."""

    content: bytes
    name: str  # as the metadata spells it: the project's display name
    version: Version
    requires_python: str | None
    summary: str | None


def read_core_metadata(path: Path, dist: DistFilename) -> CoreMetadata:
    """Read and check the METADATA (wheel) or PKG-INFO (sdist) of the file at `path`.

    `dist` is the parsed name of the file. A wheel must hold exactly one
    `<name>-<version>.dist-info/` directory, matching the filename, with
    `WHEEL` and `METADATA` in it; an sdist (.tar.gz or .zip) must hold a
    single top-level directory with `PKG-INFO` in it.

    Raises:
        InvalidDistribution: the archive is corrupt or not of its kind, a
            required member is missing, the metadata file is too large, or the
            metadata lacks Name or Version, or disagrees with the filename.
    """
    try:
        if dist.packagetype == "bdist_wheel":
            content = _wheel_metadata(path, dist)
        elif dist.filename.endswith(".zip"):
            content = _zip_sdist_metadata(path, dist)
        else:
            content = _tar_sdist_metadata(path, dist)
    except InvalidDistribution:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise _invalid(dist, f"The archive cannot be read: {exc}") from exc
    return parse_core_metadata(content, dist)


def parse_core_metadata(content: bytes, dist: DistFilename) -> CoreMetadata:
    """Parse metadata bytes and check them against the filename `dist`.

    Raises:
        InvalidDistribution: Name or Version is missing or invalid, differs
            from the filename's, or Requires-Python is not a valid specifier.
    """
    raw, _unparsed = parse_email(_header_block(content))
    name, version_text = raw.get("name"), raw.get("version")
    if not name or not _VALID_NAME.match(name):
        raise _invalid(dist, f"The metadata has no valid Name field (found {name!r}).")
    if canonicalize_name(name) != dist.name:
        raise _invalid(dist, f"The metadata name {name!r} does not match the filename.")
    try:
        version = Version(version_text or "")
    except InvalidVersion as exc:
        raise _invalid(dist, f"The metadata version {version_text!r} is not valid.") from exc
    if version != dist.version:
        raise _invalid(dist, f"The metadata version {version_text!r} does not match the filename.")
    requires_python = raw.get("requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier as exc:
            message = f"Requires-Python {requires_python!r} is not a valid specifier."
            raise _invalid(dist, message) from exc
    summary = raw.get("summary")
    return CoreMetadata(
        content, name, version, requires_python, summary.strip() if summary else None
    )


def required_projects(content: bytes) -> list[str]:
    """The normalised names that metadata `content` requires whatever extras are asked for.

    Its Requires-Dist entries, less those whose marker names an extra (they
    are only wanted by a client that asks for that extra); an entry that is not
    a valid requirement is skipped. Other markers (platform, Python version)
    are kept: they depend on the client, which the server does not know.
    """
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        _header_block(content)
    )
    names: dict[str, None] = {}
    for value in headers.get_all("Requires-Dist") or ():
        try:
            requirement = Requirement(str(value))
        except InvalidRequirement:
            continue
        if requirement.marker is None or not _NAMES_EXTRA.search(str(requirement.marker)):
            names[canonicalize_name(requirement.name)] = None
    return list(names)


def _header_block(content: bytes) -> bytes:
    """The header fields: up to the first empty line, after which comes the description
    (core metadata 2.1+), which can be most of the bytes and is never needed here."""
    end = _END_OF_HEADERS.search(content)
    return content if end is None else content[: end.start() + 1]


def _wheel_metadata(path: Path, dist: DistFilename) -> bytes:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        folders = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(folders) != 1:
            found = ", ".join(sorted(folders)) or "none"
            raise _invalid(dist, f"A wheel needs exactly one .dist-info directory, found: {found}.")
        (folder,) = folders
        _check_dist_info_name(folder, dist)
        for required in ("WHEEL", "METADATA"):
            if f"{folder}/{required}" not in names:
                raise _invalid(dist, f"The wheel has no {folder}/{required} file.")
        return _read_zip_member(archive, archive.getinfo(f"{folder}/METADATA"), dist)


def _check_dist_info_name(folder: str, dist: DistFilename) -> None:
    name, _, version = folder.removesuffix(".dist-info").rpartition("-")
    try:
        matches = canonicalize_name(name) == dist.name and Version(version) == dist.version
    except InvalidVersion:
        matches = False
    if not matches:
        raise _invalid(dist, f"The wheel's {folder} directory does not match the filename.")


def _zip_sdist_metadata(path: Path, dist: DistFilename) -> bytes:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _invalid(dist, f"The archive has more than {MAX_MEMBERS} members.")
        top = _single_top_directory([info.filename for info in infos], dist)
        try:
            info = archive.getinfo(f"{top}/PKG-INFO")
        except KeyError:
            raise _invalid(dist, f"The sdist has no {top}/PKG-INFO file.") from None
        return _read_zip_member(archive, info, dist)


def _read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dist: DistFilename) -> bytes:
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _invalid(dist, f"{info.filename} is neither stored nor deflated.")
    _check_size(info.file_size, info.filename, dist)  # declared size: refuse before inflating
    with archive.open(info) as member:
        return _bounded_read(member, info.filename, dist)


def _tar_sdist_metadata(path: Path, dist: DistFilename) -> bytes:
    # Walk the members lazily: a compressed tar can only be scanned in order,
    # and this stops early instead of inflating a bomb to the end.
    with tarfile.open(path, "r:gz") as archive:
        top: str | None = None
        content: bytes | None = None
        scanned = 0
        for count, member in enumerate(archive, start=1):
            scanned += member.size
            if count > MAX_MEMBERS or scanned > MAX_SCANNED_BYTES:
                raise _invalid(dist, "The archive is too large to inspect.")
            head, _, rest = member.name.partition("/")
            if top is not None and head != top:
                raise _invalid(dist, "An sdist must contain a single top-level directory.")
            top = head
            if rest == "PKG-INFO" and member.isfile():
                content = _read_tar_member(archive, member, dist)
        if content is None:
            raise _invalid(dist, "The sdist has no <top directory>/PKG-INFO file.")
        return content


def _read_tar_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, dist: DistFilename
) -> bytes:
    _check_size(member.size, member.name, dist)
    stream = archive.extractfile(member)
    if stream is None:
        raise _invalid(dist, f"{member.name} is not a regular file.")
    with stream:
        return _bounded_read(stream, member.name, dist)


def _single_top_directory(names: list[str], dist: DistFilename) -> str:
    tops = {name.split("/", 1)[0] for name in names}
    top = tops.pop() if len(tops) == 1 else ""
    if not top or not any(name.startswith(top + "/") for name in names):
        raise _invalid(dist, "An sdist must contain a single top-level directory.")
    return top


def _check_size(size: int, member: str, dist: DistFilename) -> None:
    if size > MAX_METADATA_SIZE:
        limit = MAX_METADATA_SIZE // (1024 * 1024)
        raise _invalid(dist, f"{member} is larger than the {limit} MiB limit.")


def _bounded_read(stream: IO[bytes], member: str, dist: DistFilename) -> bytes:
    """Read at most one byte past the limit: a lying size header can't make us inflate more."""
    content = stream.read(MAX_METADATA_SIZE + 1)
    _check_size(len(content), member, dist)
    return content


def _invalid(dist: DistFilename, reason: str) -> InvalidDistribution:
    # The "Invalid distribution file." prefix is Warehouse's (STANDARDS §2.16).
    return InvalidDistribution(f"Invalid distribution file {dist.filename!r}. {reason}")
