"""One OSV record as its own page shows it: `/advisories/{id}`.

The page is read from the stored record (`db.advisories`), withdrawn or not,
so a link from anywhere keeps working after a record is withdrawn; the page
then says so.

The record's `details` is Markdown written by whoever filed the advisory (or
by anyone, for a database an operator carries in): it is rendered by the
READMEs' renderer (`dists.readme`, readme_renderer's nh3 allow-list) and
cleaned again, more strictly, by `safe_details`: no images (a remote image
is a beacon telling its host who read which advisory, and when; the pages'
Content-Security-Policy would block it too), links only to absolute http(s)
URLs or to the page's own anchors, each `rel="noopener nofollow noreferrer"`.
References are shown as links only when `http_url` accepts them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import nh3
import readme_renderer.clean
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.advisories.index import Advisories
from packyard.advisories.records import MALICIOUS_PREFIX, RecordRejected, read_record
from packyard.browser.advisories import describe_affected, fixed_versions
from packyard.browser.metadata import http_url
from packyard.db.advisories import Advisory
from packyard.dists.readme import render_readme

# Far above any real record's details (the largest is a few KiB); rendering
# time grows with the text, so a hostile record is cut here.
MAX_DETAILS_CHARS = 100_000
MAX_REFERENCES = 200
LINK_REL = "noopener nofollow noreferrer"
# The README allow-list without what loads or submits anything.
_TAGS = readme_renderer.clean.ALLOWED_TAGS - {"img", "picture", "input"}
_ATTRIBUTES = {
    tag: set(names)
    for tag, names in readme_renderer.clean.ALLOWED_ATTRIBUTES.items()
    if tag in _TAGS or tag == "*"
}


@dataclass(frozen=True, slots=True)
class Reference:
    kind: str  # the OSV type: ADVISORY, FIX, WEB, ...
    url: str
    linkable: bool  # an absolute http(s) URL; anything else is shown as text


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """One project the record names, in full (not shortened as on project pages)."""

    name: str  # normalised
    affected: tuple[str, ...]
    fixed: tuple[str, ...]
    accepted: str | None  # why an admin accepted the risk for it


@dataclass(frozen=True, slots=True)
class AdvisoryPage:
    id: str
    aliases: tuple[str, ...]
    known_aliases: frozenset[str]  # aliases that have a page here too
    summary: str | None
    details: str  # sanitised HTML
    truncated: bool  # `details` was longer than MAX_DETAILS_CHARS
    severity: tuple[str, ...]  # "CVSS_V3: CVSS:3.1/AV:N/...", as text
    references: tuple[Reference, ...]
    published: datetime | None
    modified: datetime
    withdrawn: datetime | None
    packages: tuple[AffectedPackage, ...]

    @property
    def malicious(self) -> bool:
        return self.id.startswith(MALICIOUS_PREFIX)


def load_advisory_page(
    session: Session, advisory_id: str, state: Advisories
) -> AdvisoryPage | None:
    """The page of the stored record `advisory_id` (None: no such record);
    accepted risks come from `state`. Synchronous: call from a worker thread."""
    row = session.get(Advisory, advisory_id)
    if row is None:
        return None
    data = _record_data(row.record)
    details = data.get("details")
    text = details if isinstance(details, str) else ""
    aliases = tuple(json.loads(row.aliases or "[]"))
    known = set(session.scalars(select(Advisory.id).where(Advisory.id.in_(aliases))))
    return AdvisoryPage(
        id=row.id,
        aliases=aliases,
        known_aliases=frozenset(known),
        summary=row.summary,
        details=safe_details(text[:MAX_DETAILS_CHARS]),
        truncated=len(text) > MAX_DETAILS_CHARS,
        severity=_severity(data.get("severity")),
        references=_references(data.get("references")),
        published=row.published,
        modified=row.modified,
        withdrawn=row.withdrawn,
        packages=_packages(data, state),
    )


def safe_details(markdown: str) -> str:
    """`details` (CommonMark/GFM) as HTML safe to put in a page: see the module docstring."""
    html = render_readme(markdown, "text/markdown")
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https"},
        link_rel=LINK_REL,
    )


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Links go to absolute http(s) URLs or to this page's own anchors, nowhere else
    (a relative link would lead into this server, e.g. to an admin page)."""
    if attribute == "href" and not (http_url(value) or value.startswith("#")):
        return None
    return value


def _record_data(text: str) -> Mapping[str, object]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return cast(Mapping[str, object], data) if isinstance(data, dict) else {}


def _packages(data: Mapping[str, object], state: Advisories) -> tuple[AffectedPackage, ...]:
    """The PyPI projects of the record; none when it no longer reads (stored by an
    older packyard): the page still shows its text."""
    try:
        record = read_record(dict(data))
    except RecordRejected:
        return ()
    return tuple(
        AffectedPackage(
            name=name,
            affected=describe_affected(entries),
            fixed=fixed_versions(entries),
            accepted=state.accepted_reason(record.id, name),
        )
        for name, entries in sorted(record.affected.items())
    )


def _references(value: object) -> tuple[Reference, ...]:
    if not isinstance(value, list):
        return ()
    found = []
    for item in value[:MAX_REFERENCES]:
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(url, str) and url:
            kind = item.get("type")
            found.append(Reference(str(kind or "WEB"), url, http_url(url)))
    return tuple(found)


def _severity(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        f"{item.get('type', '')}: {item.get('score', '')}"
        for item in value
        if isinstance(item, dict)
    )
