"""Readers of an upstream index's pages: PEP 691 JSON and PEP 503 HTML.

Pure functions, bytes or text in, model values out; no I/O, so the HTTP and
caching side (`upstream.py`) stays small. The upstream is not trusted: a bad
file entry or field is dropped (with one warning per page), never an error;
only a page that cannot be read at all, or that speaks a newer major API
version, raises `InvalidPage`.

Two kinds of entries are dropped with an `upstream-file-dropped` event
(`upstream_events`), because serving them would let the upstream choose
more than its own files: a file on a host other than the upstream's own and
its file hosts (`upstream_hosts`: packyard would connect there), and a wheel
or sdist whose filename names another project (a page may only list its own
project's files).

A file's PEP 740 provenance URL is kept in `DistFile.provenance` when it is an
absolute http(s) URL on those same hosts (packyard fetches it from there:
`upstream_provenance`), and dropped otherwise, with one warning per page; the
file itself stays. Served pages never show it: they link to this server's
`/integrity/` route (DESIGN §2, `serialize.provenance_url`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from html.parser import HTMLParser
from typing import TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from packyard.model import (
    ACTIVE,
    DistFile,
    ProjectDetail,
    ProjectEntry,
    ProjectList,
    ProjectStatus,
)
from packyard.repository import upstream_events
from packyard.repository import upstream_fields as fields
from packyard.repository.upstream_fields import Attributes
from packyard.repository.upstream_hosts import UpstreamHosts

logger = logging.getLogger(__name__)

# SRA §Versioning: clients MUST refuse a higher major and SHOULD warn about a
# higher minor than they know; 1.4 is the current version (PEP 792).
SUPPORTED_MAJOR = 1
KNOWN_MINOR = 4
_API_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")
# NN: a valid project name (the project list keeps names as given).
_PROJECT_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE)
_Raw = TypeVar("_Raw")
MAX_EXAMPLES = 5
"""Dropped entries named in one `upstream-file-dropped` event (the rest are counted)."""


class InvalidPage(ValueError):
    """A page that cannot be read at all, or of an unsupported API version."""


# --- the four readers -------------------------------------------------------


def parse_json_page(
    body: bytes, page_url: str, name: str, source: str, hosts: UpstreamHosts | None = None
) -> ProjectDetail:
    """Read a PEP 691 project page (SRA §JSON Project Detail).

    Args:
        body: the response body.
        page_url: the final URL of the page (after redirects); relative file
            URLs resolve against it.
        name: the normalised project name; the page is for it whatever the
            upstream's `name` key says.
        source: the upstream's label, stored in `ProjectDetail.source`.
        hosts: the hosts files may be on (None: any, for tests of the format).

    Raises:
        InvalidPage: the body is not a JSON object with a `files` list, or its
            `meta.api-version` has a major version other than 1.
    """
    page = _json_object(body)
    _check_meta(page.get("meta"), source)
    raw_files = page.get("files")
    if not isinstance(raw_files, list):
        raise InvalidPage("the JSON page has no list of files")
    declared = page.get("name")
    if isinstance(declared, str) and canonicalize_name(declared) != name:
        logger.warning("upstream %s: page for %r names itself %r", source, name, declared)
    files = _keep_files(raw_files, lambda raw: _json_file(raw, page_url), source, name, hosts)
    return ProjectDetail(
        name=name,
        files=files,
        versions=_versions(_strings(page.get("versions")), files),
        status=_json_status(page.get("project-status")),
        source=source,
    )


def parse_html_page(
    text: str, page_url: str, name: str, source: str, hosts: UpstreamHosts | None = None
) -> ProjectDetail:
    """Read a PEP 503 project page (SRA §Project Detail, frozen by PEP 833).

    Arguments as for `parse_json_page`; `<base href>` is honoured.

    Raises:
        InvalidPage: the text is not HTML that can be read, or its
            `pypi:repository-version` has a major version other than 1.
    """
    html = _read_html(text)
    _check_api_version(html.meta.get("pypi:repository-version"), source)
    base = urljoin(page_url, html.base) if html.base else page_url
    files = _keep_files(html.anchors, lambda anchor: _html_file(*anchor, base), source, name, hosts)
    return ProjectDetail(
        name=name,
        files=files,
        versions=_versions((), files),
        status=_status(
            html.meta.get("pypi:project-status"), html.meta.get("pypi:project-status-reason")
        ),
        source=source,
    )


def parse_json_list(body: bytes, source: str) -> ProjectList:
    """Read a PEP 691 project list; names are kept as given (SRA §Project List).

    Raises:
        InvalidPage: not a JSON object with a `projects` list, or API major != 1.
    """
    page = _json_object(body)
    _check_meta(page.get("meta"), source)
    raw = page.get("projects")
    if not isinstance(raw, list):
        raise InvalidPage("the JSON project list has no list of projects")
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in raw]
    return _project_list(names, source)


def parse_html_list(text: str, source: str) -> ProjectList:
    """Read a PEP 503 project list: the text of each anchor is a project name.

    Raises:
        InvalidPage: not readable HTML, or API major != 1.
    """
    html = _read_html(text)
    _check_api_version(html.meta.get("pypi:repository-version"), source)
    return _project_list([anchor_text for _, anchor_text in html.anchors], source)


# --- shared page-level helpers -------------------------------------------------


def _json_object(body: bytes) -> dict[str, object]:
    try:
        page = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidPage(f"the JSON page cannot be read: {exc}") from exc
    # SRA §JSON Serialization: responses are always objects.
    if not isinstance(page, dict):
        raise InvalidPage(f"the JSON page is a {type(page).__name__}, not an object")
    return page


def _check_meta(meta: object, source: str) -> None:
    _check_api_version(meta.get("api-version") if isinstance(meta, dict) else None, source)


def _check_api_version(version: object, source: str) -> None:
    """PEP 629: a missing version means 1.0; a higher major MUST fail."""
    if version is None:
        return
    match = _API_VERSION.fullmatch(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise InvalidPage(f"its API version {version!r} is not of the form 'major.minor'")
    major, minor = int(match[1]), int(match[2])
    if major != SUPPORTED_MAJOR:
        raise InvalidPage(
            f"it speaks simple API version {version}, and packyard reads only 1.x "
            "(PEP 629: a client must refuse another major version)"
        )
    if minor > KNOWN_MINOR:
        logger.warning("upstream %s speaks API %s, newer than 1.%d", source, version, KNOWN_MINOR)


def _keep_files(
    raw: Iterable[_Raw],
    build: Callable[[_Raw], DistFile | str],
    source: str,
    name: str,
    hosts: UpstreamHosts | None,
) -> tuple[DistFile, ...]:
    """Build every entry; drop bad ones and repeated filenames, with one warning,
    and files elsewhere or of other projects, with one event."""
    files: dict[str, DistFile] = {}
    dropped: list[str] = []
    refused: list[str] = []
    for entry in raw:
        built = build(entry)
        if isinstance(built, str):
            dropped.append(built)
        elif (reason := _foreign(built, name, hosts)) is not None:
            refused.append(reason)
        elif built.filename in files:
            dropped.append(f"{built.filename!r} is listed twice")
        else:
            files[built.filename] = built
    if dropped:
        logger.warning(
            "upstream %s: dropped %d bad file entries of %r, e.g. %s",
            source,
            len(dropped),
            name,
            dropped[0],
        )
    if refused:
        upstream_events.emit(
            "upstream-file-dropped",
            source,
            project=name,
            count=len(refused),
            reason="; ".join(refused[:MAX_EXAMPLES]),
        )
    return _provenance_on_hosts(files.values(), hosts, source, name)


def _provenance_on_hosts(
    files: Iterable[DistFile], hosts: UpstreamHosts | None, source: str, name: str
) -> tuple[DistFile, ...]:
    """`files`, each provenance URL elsewhere than `hosts` dropped (with one warning):
    packyard would connect there to fetch it."""
    if hosts is None:
        return tuple(files)
    kept: list[DistFile] = []
    elsewhere: list[str] = []
    for dist in files:
        if dist.provenance is not None and not hosts.allows(dist.provenance):
            elsewhere.append(dist.filename)
            dist = replace(dist, provenance=None)
        kept.append(dist)
    if elsewhere:
        logger.warning(
            "upstream %s: dropped the provenance URL of %d files of %r, on a host other "
            "than its own or file hosts (%s), e.g. of %r",
            source,
            len(elsewhere),
            name,
            hosts.described,
            elsewhere[0],
        )
    return tuple(kept)


def _foreign(dist: DistFile, name: str, hosts: UpstreamHosts | None) -> str | None:
    """Why `dist` may not be on the page of `name`, or None if it may."""
    if hosts is not None and not hosts.allows(dist.url):
        host = urlsplit(dist.url).netloc.rpartition("@")[2]  # never the credentials
        return (
            f"{dist.filename!r} is on {host}, not on the upstream's own host "
            f"or file hosts ({hosts.described})"
        )
    owner = _project_of(dist.filename)
    if owner != name:
        return f"{dist.filename!r} is not a file of {name!r} (it names {owner!r})"
    return None


def _project_of(filename: str) -> str:
    """The normalised project a distribution filename names.

    Wheels and PEP 625 sdists are parsed. An older or odder name (a legacy
    format, an sdist whose version does not parse) is read as `<name>-<rest>`
    split before the first part that starts with a digit, as pip reads them.
    """
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[0])
    except ValueError:  # InvalidWheelFilename, InvalidSdistFilename, InvalidVersion
        pass
    stem = filename.rsplit(".", 2 if filename.endswith(".tar.gz") else 1)[0]
    words = stem.split("-")
    cut = next((i for i, word in enumerate(words) if i and word[:1].isdigit()), len(words))
    return str(canonicalize_name("-".join(words[:cut])))


def _project_list(names: Iterable[object], source: str) -> ProjectList:
    projects = []
    dropped = 0
    for name in names:
        if isinstance(name, str) and _PROJECT_NAME.fullmatch(name.strip()):
            projects.append(ProjectEntry(name.strip()))
        else:
            dropped += 1
    if dropped:
        logger.warning("upstream %s: dropped %d invalid project names", source, dropped)
    return ProjectList(tuple(projects))


def _versions(declared: Iterable[str], files: Sequence[DistFile]) -> tuple[str, ...]:
    """SRA §JSON Project Detail: `versions` is a set holding every file's version."""
    found: dict[object, str] = {}
    from_files = (_file_version(file.filename) for file in files)
    for text in (*declared, *(v for v in from_files if v is not None)):
        try:
            key: object = Version(text)
        except InvalidVersion:
            key = text
        found.setdefault(key, text)
    return tuple(sorted(found.values(), key=_version_order))


def _version_order(text: str) -> tuple[int, Version, str]:
    try:
        return (0, Version(text), "")
    except InvalidVersion:
        return (1, _ZERO, text)


_ZERO = Version("0")


def _file_version(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[1])
    except ValueError:  # InvalidWheelFilename, InvalidSdistFilename
        return None
    return None


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item.strip()]


def _json_status(value: object) -> ProjectStatus:
    if not isinstance(value, dict):
        return ACTIVE
    return _status(value.get("status"), value.get("reason"))


def _status(status: object, reason: object) -> ProjectStatus:
    """PEP 792 status, passed through intact (DESIGN §2); missing means active."""
    if not isinstance(status, str) or not status.strip():
        return ACTIVE
    reason = reason if isinstance(reason, str) and reason.strip() else None
    if status.strip() == "active" and reason is None:
        return ACTIVE
    return ProjectStatus(status.strip(), reason)


# --- HTML ------------------------------------------------------------------------


class _SimpleHTML(HTMLParser):
    """Collects what PEP 503 pages carry: anchors, `<base href>` and `pypi:` meta tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.meta: dict[str, str] = {}
        self.anchors: list[tuple[Attributes, str]] = []
        self._anchor: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        first: dict[str, str | None] = {}
        for key, value in attrs:  # HTML: the first of repeated attributes wins
            first.setdefault(key, value)
        if tag == "a":
            self._close_anchor()
            self._anchor, self._text = first, []
        elif tag == "base" and self.base is None and first.get("href"):
            # HTML §4.2.3: only the first <base href> counts.
            self.base = first["href"]
        elif tag == "meta" and first.get("name") and first.get("content") is not None:
            self.meta.setdefault(str(first["name"]).lower(), str(first["content"]))

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_anchor()

    def close(self) -> None:
        super().close()
        self._close_anchor()

    def _close_anchor(self) -> None:
        if self._anchor is not None:
            self.anchors.append((self._anchor, "".join(self._text).strip()))
            self._anchor = None


def _read_html(text: str) -> _SimpleHTML:
    html = _SimpleHTML()
    try:
        html.feed(text)
        html.close()
    except (AssertionError, ValueError) as exc:  # html.parser's rare hard failures
        raise InvalidPage(f"the HTML page cannot be read: {exc}") from exc
    return html


def _html_file(attrs: Attributes, text: str, base: str) -> DistFile | str:
    located = fields.locate(attrs.get("href"), base)
    if located is None:
        return f"an anchor has no usable http(s) href: {attrs.get('href')!r}"
    url, fragment = located
    # SRA: the anchor text MUST be the filename; fall back to the URL's last segment.
    filename = text or unquote(urlsplit(url).path.rpartition("/")[2])
    if not fields.is_dist_filename(filename):
        return f"{filename!r} is not a distribution filename"
    core = fields.html_core_metadata(attrs.get("data-core-metadata"))
    if core is None:  # PEP 714: fall back to the older attribute name
        core = fields.html_core_metadata(attrs.get("data-dist-info-metadata"))
    return DistFile(
        filename=filename,
        url=url,
        hashes=fields.fragment_hashes(fragment),
        requires_python=fields.text_value(attrs.get("data-requires-python")),
        core_metadata=core or False,
        yanked=fields.html_yanked(attrs),
        size=fields.size(attrs.get("data-size")),
        upload_time=fields.upload_time(attrs.get("data-upload-time")),
        provenance=fields.absolute_url(attrs.get("data-provenance")),
        gpg_sig=fields.flag(attrs.get("data-gpg-sig")),
    )


# --- JSON ------------------------------------------------------------------------


def _json_file(entry: object, page_url: str) -> DistFile | str:
    if not isinstance(entry, dict):
        return f"a file entry is a {type(entry).__name__}, not an object"
    filename = entry.get("filename")
    if not isinstance(filename, str) or not fields.is_dist_filename(filename):
        return f"{filename!r} is not a distribution filename"
    located = fields.locate(entry.get("url"), page_url)
    if located is None:
        return f"{filename!r} has no usable http(s) url"
    core = fields.json_core_metadata(entry.get("core-metadata"))
    if core is None:  # PEP 714: fall back to the deprecated key
        core = fields.json_core_metadata(entry.get("dist-info-metadata"))
    return DistFile(
        filename=filename,
        url=located[0],
        hashes=fields.json_hashes(entry.get("hashes")) or fields.fragment_hashes(located[1]),
        requires_python=fields.text_value(entry.get("requires-python")),
        core_metadata=core or False,
        yanked=fields.json_yanked(entry.get("yanked")),
        size=fields.size(entry.get("size")),
        upload_time=fields.upload_time(entry.get("upload-time")),
        provenance=fields.absolute_url(entry.get("provenance")),
        gpg_sig=fields.flag(entry.get("gpg-sig")),
    )
