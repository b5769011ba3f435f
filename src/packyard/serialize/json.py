"""PEP 691 JSON pages (`application/vnd.pypi.simple.v1+json`), API version 1.4.

Written with the standard library `json`, compact and ASCII-only (a lone
surrogate in a hostile upstream string cannot make encoding fail). Pages
are rendered once per change, so a faster encoder would not show.
"""

from __future__ import annotations

import json
from typing import Any

from packyard.model import DistFile, ProjectDetail, ProjectList
from packyard.serialize import API_VERSION, all_versions, file_url, provenance_url, upload_time

_META = {"api-version": API_VERSION}


def render_project_list(projects: ProjectList) -> bytes:
    """`{"meta": {"api-version"}, "projects": [{"name"}]}` (SRA §JSON Project List)."""
    page = {"meta": _META, "projects": [{"name": entry.name} for entry in projects.projects]}
    return _dump(page)


def render_project_detail(project: ProjectDetail, site_url: str | None = None) -> bytes:
    """A project page (SRA §JSON Project Detail).

    `name` is normalised; `versions` holds every file's version (PEP 700);
    `project-status` appears when it is not active (PEP 792); each key of
    `project.private` appears with a `_` prefix, which the SRA reserves for
    the server. Private values must be JSON-compatible. `site_url` (this
    site's absolute URL, ending in `/`) makes the absolute `provenance` URLs
    PEP 740 asks for; without it they are left out.
    """
    page: dict[str, Any] = {
        "meta": _META,
        "name": project.name,
        "versions": all_versions(project),
        "files": [_file(project, dist, site_url) for dist in project.files],
    }
    if project.status.status != "active":
        page["project-status"] = {"status": project.status.status, "reason": project.status.reason}
    for key, value in project.private.items():
        page["_" + key] = value
    return _dump(page)


def _file(page: ProjectDetail, dist: DistFile, site_url: str | None) -> dict[str, Any]:
    project = page.name
    entry: dict[str, Any] = {
        "filename": dist.filename,
        # The same relative URL as the HTML link, without the hash fragment.
        "url": file_url(project, dist.filename),
        # MUST be present, even if empty; names in lower case.
        "hashes": {name.lower(): value.lower() for name, value in dist.hashes.items()},
    }
    if dist.requires_python is not None:
        entry["requires-python"] = dist.requires_python
    # PEP 714: only `core-metadata`. Never `dist-info-metadata`: pip 22.3 to
    # 23.0 failed on it. Absent means no metadata file, as in the HTML form.
    metadata = dist.core_metadata
    if isinstance(metadata, bool):
        if metadata:
            entry["core-metadata"] = True
    else:
        entry["core-metadata"] = {k.lower(): v.lower() for k, v in metadata.items()} or True
    if dist.gpg_sig is not None:
        entry["gpg-sig"] = dist.gpg_sig
    # PEP 592: false, true, or a non-empty reason; an empty reason is just true.
    entry["yanked"] = dist.yanked if dist.yanked != "" else True
    # Mandatory since 1.1, but only upstream HTML pages can leave it unknown;
    # leaving it out is better than a size of 0 that a client would trust.
    if dist.size is not None:
        entry["size"] = dist.size
    if dist.upload_time is not None:
        entry["upload-time"] = upload_time(dist.upload_time)
    provenance = provenance_url(page, dist, site_url)
    if provenance is not None:
        entry["provenance"] = provenance
    return entry


def _dump(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":")).encode("ascii")
