"""Release history and file rows of a project page, from the chain's `ProjectDetail`.

Everything here comes from the index page itself (no metadata file needed),
so the top of a project page can be shown at once, even for an upstream
project whose METADATA is still being fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from packyard.browser.people import Upload
from packyard.browser.provenance import Publisher
from packyard.model import DistFile, ProjectDetail


@dataclass(frozen=True, slots=True)
class FileRow:
    """One distribution file as the Files table shows it."""

    filename: str
    url: str  # this server's /files/ route (DESIGN §2), never the upstream
    kind: str  # "Wheel" or "Source"
    python_tags: str  # e.g. "py3", "cp312"; "source" for an sdist
    abi_tags: str
    platform_tags: str
    size: int | None
    sha256: str | None
    upload_time: datetime | None
    requires_python: str | None
    yanked: bool
    yank_reason: str | None
    provenance: str | None  # this server's /integrity/ route (PEP 740), if it has one
    has_metadata: bool  # PEP 658: the index serves `<file>.metadata`
    # Who the provenance says published it: in-house files whose verified
    # summary parses (`browser.provenance`); None for upstream files.
    publisher: Publisher | None = None
    # In-house files: the other hashes PyPI shows and who uploaded the file with
    # what (`browser.people`); None for upstream files.
    md5: str | None = None
    blake2_256: str | None = None
    uploaded_by: str | None = None
    uploaded_via: str | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """One version: yanked when every file of it is (PEP 592)."""

    version: str
    prerelease: bool
    files: tuple[FileRow, ...]
    yanked: bool
    yank_reason: str | None
    upload_time: datetime | None

    @property
    def requires_python(self) -> str | None:
        """The Requires-Python of the release's files (the first that has one)."""
        return next((row.requires_python for row in self.files if row.requires_python), None)

    def metadata_file(self) -> FileRow | None:
        """The file whose METADATA describes this release: a wheel the index
        has `.metadata` for, else any wheel, else the first sdist."""
        wheels = [row for row in self.files if row.kind == "Wheel"]
        with_metadata = [row for row in wheels if row.has_metadata]
        candidates = with_metadata or wheels or list(self.files)
        return candidates[0] if candidates else None


def build_releases(
    detail: ProjectDetail,
    publishers: Mapping[str, Publisher] | None = None,
    uploads: Mapping[str, Upload] | None = None,
) -> tuple[Release, ...]:
    """Every version of the page, newest first, with its files.

    Versions listed without files (PEP 700 `versions`) appear with none;
    files whose names do not parse are left out. `publishers`: the verified
    publisher of each file with provenance, by filename (in-house files);
    `uploads`: the hashes and uploader of each in-house file, by filename.
    """
    publishers = publishers or {}
    uploads = uploads or {}
    by_version: dict[Version, list[FileRow]] = {}
    for text in detail.versions:
        parsed = _version(text)
        if parsed is not None:
            by_version.setdefault(parsed, [])
    for dist in detail.files:
        row = _file_row(
            detail.name, dist, publishers.get(dist.filename), uploads.get(dist.filename)
        )
        if row is not None:
            by_version.setdefault(row[0], []).append(row[1])
    return tuple(
        _release(version, rows) for version, rows in sorted(by_version.items(), reverse=True)
    )


def latest_release(releases: Iterable[Release]) -> Release | None:
    """What a project page shows by default, as PyPI does: the newest final
    release not yanked, else the newest not yanked, else the newest."""
    ordered = list(releases)
    for wanted in (
        lambda r: not r.yanked and not r.prerelease and r.files,
        lambda r: not r.yanked and r.files,
        lambda r: True,
    ):
        for release in ordered:
            if wanted(release):
                return release
    return None


def find_release(releases: Iterable[Release], version: str) -> Release | None:
    """The release whose version equals `version` (by PEP 440, so `1.0` finds `1.0.0`)."""
    wanted = _version(version)
    if wanted is None:
        return None
    return next((r for r in releases if _version(r.version) == wanted), None)


def _release(version: Version, rows: list[FileRow]) -> Release:
    rows.sort(key=lambda row: (row.kind != "Source", row.filename))
    yanked = bool(rows) and all(row.yanked for row in rows)
    reasons = [row.yank_reason for row in rows if row.yank_reason]
    times = [row.upload_time for row in rows if row.upload_time is not None]
    return Release(
        version=str(version),
        prerelease=version.is_prerelease,
        files=tuple(rows),
        yanked=yanked,
        yank_reason=reasons[0] if yanked and reasons else None,
        upload_time=min(times) if times else None,
    )


def _file_row(
    project: str, dist: DistFile, publisher: Publisher | None, upload: Upload | None
) -> tuple[Version, FileRow] | None:
    try:
        if dist.filename.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(dist.filename)
            kind = "Wheel"
            pythons = sorted({tag.interpreter for tag in tags})
            abis = sorted({tag.abi for tag in tags})
            platforms = sorted({tag.platform for tag in tags})
        else:
            _, version = parse_sdist_filename(dist.filename)
            kind, pythons, abis, platforms = "Source", ["source"], [], []
    except ValueError:  # InvalidWheelFilename, InvalidSdistFilename, InvalidVersion
        return None
    return version, FileRow(
        filename=dist.filename,
        url=f"/files/{project}/{quote(dist.filename, safe='!+')}",
        kind=kind,
        python_tags=".".join(pythons),
        abi_tags=".".join(abis),
        platform_tags=".".join(platforms),
        size=dist.size,
        sha256=dist.sha256,
        upload_time=dist.upload_time,
        requires_python=dist.requires_python,
        yanked=dist.yanked is not False,
        yank_reason=dist.yanked if isinstance(dist.yanked, str) and dist.yanked else None,
        provenance=(
            f"/integrity/{project}/{version}/{quote(dist.filename, safe='!+')}/provenance"
            if dist.provenance
            else None
        ),
        has_metadata=bool(dist.core_metadata),
        publisher=publisher if dist.provenance else None,
        md5=upload.md5 if upload else None,
        blake2_256=upload.blake2_256 if upload else None,
        uploaded_by=upload.uploaded_by if upload else None,
        uploaded_via=upload.uploaded_via if upload else None,
    )


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None
