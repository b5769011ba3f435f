"""PEP 503 HTML pages, in the form PEP 833 froze at repository version 1.4.

Every value that comes from a source (names, filenames, yank reasons,
requires-python, URLs) is escaped with `html.escape(quote=True)`, so `<`,
`>`, `&` and both quotes can never open a tag or leave an attribute. The
markup stays simple enough for hatch's `<a [^>]+>([^<]+)</a>` (STANDARDS
§1.10) and for the parsers of pip, uv and pypi-simple.
"""

from __future__ import annotations

from html import escape

from packaging.utils import canonicalize_name

from packyard.model import DistFile, ProjectDetail, ProjectList
from packyard.serialize import (
    API_VERSION,
    file_url,
    fragment_hash,
    has_metadata,
    metadata_hash,
    provenance_url,
    upload_time,
)

HIDDEN_FILES = "hidden-files"  # `repository.policy.HIDDEN_FILES`: the curation's reasons
MAX_HIDDEN_LINES = 20
_HEAD = (
    "<!DOCTYPE html>\n<html>\n<head>\n"
    '<meta charset="utf-8">\n'
    # PEP 629: the repository version, so clients can refuse a newer major.
    f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
)


def render_project_list(projects: ProjectList) -> bytes:
    """The root page: one `<a href="<normalized>/">display name</a>` per project (SRA)."""
    parts = [_HEAD, "<title>Simple index</title>\n</head>\n<body>\n"]
    for entry in projects.projects:
        href = escape(canonicalize_name(entry.name), quote=True)
        parts.append(f'<a href="{href}/">{escape(entry.name, quote=True)}</a>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode("utf-8")


def render_project_detail(project: ProjectDetail, site_url: str | None = None) -> bytes:
    """A project page: one `<a>` per file, the anchor text exactly the filename (SRA).

    `site_url` (absolute, ending in `/`) makes the absolute `data-provenance`
    URLs PEP 740 asks for; without it they are left out."""
    name = escape(project.name, quote=True)
    parts = [_HEAD]
    status = project.status
    if status.status != "active":
        # PEP 792: SHOULD be emitted; may be left out when the status is active.
        value = escape(status.status, quote=True)
        parts.append(f'<meta name="pypi:project-status" content="{value}">\n')
        if status.reason is not None:
            reason = escape(status.reason, quote=True)
            parts.append(f'<meta name="pypi:project-status-reason" content="{reason}">\n')
    parts.append(f"<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n")
    for dist in project.files:
        parts.append(_link(project, dist, site_url))
    parts.extend(_hidden_lines(project))
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode("utf-8")


def _hidden_lines(project: ProjectDetail) -> list[str]:
    """A line of text per file a policy hides, with its reason: an installer that
    finds nothing to install leaves its user with "No matching distribution", and
    the page (opened in a browser, or printed by `curl`) then says why.

    Text, never a link, so no client takes a hidden file for one it may use;
    at most `MAX_HIDDEN_LINES`, then how many more.
    """
    hidden = project.private.get(HIDDEN_FILES)
    if not isinstance(hidden, list) or not hidden:
        return []
    lines = [f"<p>{len(hidden)} file(s) hidden by this index:</p>\n"]
    for entry in hidden[:MAX_HIDDEN_LINES]:
        filename = escape(str(entry.get("filename", "")), quote=True)
        reason = escape(str(entry.get("reason", "")), quote=True)
        lines.append(f"<p>{filename}: {reason}</p>\n")
    if len(hidden) > MAX_HIDDEN_LINES:
        lines.append(f"<p>and {len(hidden) - MAX_HIDDEN_LINES} more.</p>\n")
    return lines


def _link(page: ProjectDetail, dist: DistFile, site_url: str | None) -> str:
    project = page.name
    href = file_url(project, dist.filename)
    digest = fragment_hash(dist.hashes)
    if digest is not None:
        href = f"{href}#{digest[0]}={digest[1]}"
    attrs = [f'href="{escape(href, quote=True)}"']
    if dist.requires_python is not None:
        attrs.append(f'data-requires-python="{escape(dist.requires_python, quote=True)}"')
    if has_metadata(dist.core_metadata):
        known = metadata_hash(dist.core_metadata)
        value = "true" if known is None else f"{known[0]}={known[1]}"
        # PEP 714: the old name MAY be sent too, and MUST then equal the new one.
        attrs.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
    if dist.gpg_sig is not None:
        attrs.append(f'data-gpg-sig="{"true" if dist.gpg_sig else "false"}"')
    if dist.yanked is not False:
        # PEP 592: present (empty or the reason) means yanked.
        reason = "" if dist.yanked is True else escape(str(dist.yanked), quote=True)
        attrs.append(f'data-yanked="{reason}"')
    provenance = provenance_url(page, dist, site_url)
    if provenance is not None:
        attrs.append(f'data-provenance="{escape(provenance, quote=True)}"')
    if dist.size is not None:
        attrs.append(f'data-size="{dist.size}"')
    if dist.upload_time is not None:
        attrs.append(f'data-upload-time="{upload_time(dist.upload_time)}"')
    return f"<a {' '.join(attrs)}>{escape(dist.filename, quote=True)}</a><br>\n"
