"""Upstream pages as the page stores keep them: versioned JSON, read back defensively.

A kept page that cannot be read back (damaged, or of another format version)
is treated as absent, with a warning, and the upstream is asked again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus

logger = logging.getLogger(__name__)

FORMAT = 1
# Normalised names only (NN): never a separator, never `.`/`..`.
NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredPage(Generic[T]):
    """A page read back from disk, with the wall-clock time it was fetched."""

    value: T
    fetched_at: float


def checked_name(name: str) -> str:
    """`name` if it is a normalised project name. Raises ValueError otherwise."""
    if not NAME.fullmatch(name):
        raise ValueError(f"not a normalised project name: {name!r}")
    return name


def parse_page(data: bytes, where: object) -> dict[str, Any] | None:
    """The JSON object of a kept page, if it is one of this format version."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", where, exc)
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        logger.warning("ignoring the cached page %s: not of format %d", where, FORMAT)
        return None
    return raw


def project_page(
    raw: Mapping[str, Any], fetched_at: float, where: object
) -> StoredPage[ProjectDetail] | None:
    try:
        return StoredPage(_decode_detail(raw["detail"]), fetched_at)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        logger.warning("ignoring the unreadable cached page %s: %s", where, exc)
        return None


def list_page(
    raw: Mapping[str, Any], fetched_at: float, where: object
) -> StoredPage[ProjectList] | None:
    try:
        names = raw["projects"]
        return StoredPage(ProjectList(tuple(ProjectEntry(str(n)) for n in names)), fetched_at)
    except (KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable cached project list %s: %s", where, exc)
        return None


def project_content(detail: ProjectDetail) -> dict[str, Any]:
    """What a kept project page holds (with `FORMAT`, the JSON written)."""
    return {"detail": _encode_detail(detail)}


def list_content(projects: ProjectList) -> dict[str, Any]:
    """What the kept project list holds."""
    return {"projects": [entry.name for entry in projects.projects]}


def _encode_detail(detail: ProjectDetail) -> dict[str, Any]:
    return {
        "name": detail.name,
        "versions": list(detail.versions),
        "status": {"status": detail.status.status, "reason": detail.status.reason},
        "source": detail.source,
        "private": dict(detail.private),
        "files": [_encode_file(dist) for dist in detail.files],
    }


def _encode_file(dist: DistFile) -> dict[str, Any]:
    core = dist.core_metadata
    return {
        "filename": dist.filename,
        "url": dist.url,
        "hashes": dict(dist.hashes),
        "requires_python": dist.requires_python,
        "core_metadata": core if isinstance(core, bool) else dict(core),
        "yanked": dist.yanked,
        "size": dist.size,
        "upload_time": dist.upload_time.isoformat() if dist.upload_time else None,
        "provenance": dist.provenance,
        "gpg_sig": dist.gpg_sig,
    }


def _decode_detail(raw: Mapping[str, Any]) -> ProjectDetail:
    status = raw["status"]
    return ProjectDetail(
        name=str(raw["name"]),
        files=tuple(_decode_file(item) for item in raw["files"]),
        versions=tuple(str(v) for v in raw["versions"]),
        status=ProjectStatus(str(status["status"]), status["reason"]),
        source=str(raw["source"]),
        private=dict(raw["private"]),
    )


def _decode_file(raw: Mapping[str, Any]) -> DistFile:
    core = raw["core_metadata"]
    upload_time = raw["upload_time"]
    return DistFile(
        filename=str(raw["filename"]),
        url=str(raw["url"]),
        hashes={str(k): str(v) for k, v in raw["hashes"].items()},
        requires_python=raw["requires_python"],
        core_metadata=core if isinstance(core, bool) else {str(k): str(v) for k, v in core.items()},
        yanked=raw["yanked"],
        size=raw["size"],
        upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
        provenance=raw["provenance"],
        gpg_sig=raw["gpg_sig"],
    )
