"""The members of a wheel or sdist, checked before anything is read from it.

An archive from outside is installed by clients that unpack it: pip and uv
write its members under a directory, and a build backend unpacks an sdist.
So an archive is refused (`InvalidDistribution`, STANDARDS §2.16) when:

- a member escapes the tree: an absolute path, a drive, a `..` segment, or a
  symlink or hardlink whose target lies outside (tar members go through the
  standard library's `tarfile.data_filter`, the rule `tarfile` itself applies
  when extracting with `filter="data"`; it also refuses device files);
- a member name occurs twice: two `*.dist-info/METADATA` or two PKG-INFO
  would let the index show one metadata and the installer read another;
- its members add up to far more than the file: more than `max_ratio` times
  its size (above `RATIO_FLOOR`, below which any ratio is harmless), or more
  than `max_bytes` in any case (zip and tar bombs).

Zip sizes are the central directory's (Python's zipfile, like pip, never
inflates a member past its declared size); a tar stream is walked, and the
walk stops as soon as the sizes pass the limit.
"""

from __future__ import annotations

import posixpath
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packyard.dists.filenames import DistFilename
from packyard.errors import InvalidDistribution

RATIO_FLOOR = 16 * 1024 * 1024
MAX_MEMBERS = 100_000
MAX_LINK_TARGET = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")
# Where `data_filter` is told the archive would be unpacked: never touched.
_NOWHERE = "/nonexistent/packyard-archive-check"


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How far an archive's members may add up (the `[upload]` settings)."""

    max_ratio: float = 50.0
    max_bytes: int = 8 * 1024**3


def check_archive(path: Path, dist: DistFilename, limits: ArchiveLimits) -> None:
    """Refuse an archive whose members escape the tree, repeat, or add up too far.

    Blocking (it reads the archive's directory, or walks a tar stream): run it
    in a worker thread.

    Raises:
        InvalidDistribution: "Invalid distribution file …" with the reason; also
            when the archive cannot be read at all.
    """
    budget = _budget(path.stat().st_size, limits)
    try:
        if dist.filename.endswith((".whl", ".zip")):
            _check_zip(path, dist, budget)
        else:
            _check_tar(path, dist, budget)
    except InvalidDistribution:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise _invalid(dist, f"The archive cannot be read: {exc}") from exc


def _budget(size: int, limits: ArchiveLimits) -> int:
    return min(limits.max_bytes, max(RATIO_FLOOR, int(size * limits.max_ratio)))


def _check_zip(path: Path, dist: DistFilename, budget: int) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _invalid(dist, f"The archive has more than {MAX_MEMBERS} members.")
        seen: set[str] = set()
        total = 0
        for info in infos:
            _check_name(info.filename, dist)
            _check_unique(info.filename, seen, dist)
            total += info.file_size
            if total > budget:
                raise _too_large(dist, budget)
            if _is_zip_symlink(info):
                target = archive.read(info)[:MAX_LINK_TARGET].decode("utf-8", "replace")
                _check_link(info.filename, target, dist)


def _is_zip_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_tar(path: Path, dist: DistFilename, budget: int) -> None:
    with tarfile.open(path, "r:*") as archive:
        seen: set[str] = set()
        total = 0
        for count, member in enumerate(archive, start=1):
            if count > MAX_MEMBERS:
                raise _invalid(dist, f"The archive has more than {MAX_MEMBERS} members.")
            _check_name(member.name, dist)
            try:
                tarfile.data_filter(member, _NOWHERE)
            except tarfile.FilterError as exc:
                raise _invalid(dist, f"The member {member.name!r} is refused: {exc}") from exc
            if not member.isdir():
                _check_unique(member.name, seen, dist)
            total += member.size
            if total > budget:
                raise _too_large(dist, budget)


def _check_name(name: str, dist: DistFilename) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or _DRIVE.match(normal) or ".." in normal.split("/"):
        raise _invalid(dist, f"The member {name!r} escapes the archive's directory.")


def _check_link(name: str, target: str, dist: DistFilename) -> None:
    """A symlink at `name` pointing to `target` must stay inside the tree."""
    normal = target.replace("\\", "/")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), normal))
    if normal.startswith("/") or _DRIVE.match(normal) or resolved.split("/")[0] == "..":
        raise _invalid(dist, f"The symlink {name!r} points outside the archive ({target!r}).")


def _check_unique(name: str, seen: set[str], dist: DistFilename) -> None:
    key = name.rstrip("/")
    if key in seen:
        raise _invalid(dist, f"The member {name!r} occurs more than once.")
    seen.add(key)


def _too_large(dist: DistFilename, budget: int) -> InvalidDistribution:
    return _invalid(
        dist,
        f"Its members add up to more than {budget / 1024**2:.0f} MiB: far more than the "
        "file itself (a zip or tar bomb). An administrator can raise "
        "upload.max_uncompressed_ratio or upload.max_uncompressed_bytes.",
    )


def _invalid(dist: DistFilename, reason: str) -> InvalidDistribution:
    # The "Invalid distribution file" prefix is Warehouse's (STANDARDS §2.16).
    return InvalidDistribution(f"Invalid distribution file {dist.filename!r}. {reason}")
