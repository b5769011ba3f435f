"""Core metadata as a project page shows it (STANDARDS §5, core metadata spec).

`parse_metadata` reads a METADATA / PKG-INFO file leniently: a page shows
what a distribution says even when some field is malformed, so nothing here
raises for bad values. Values stay plain text; the templates escape them, and
only URLs that `http_url` accepts are ever put in an `href`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses
from urllib.parse import quote, urlsplit

from packaging.metadata import RawMetadata, parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Well-known project URL labels and their aliases (STANDARDS §5, WKU), keyed by
# the normalised label, with the title shown for them.
WELL_KNOWN_LABELS: dict[str, tuple[str, str]] = {
    alias: (kind, title)
    for kind, title, aliases in (
        ("homepage", "Homepage", ()),
        ("source", "Source", ("repository", "sourcecode", "github")),
        ("download", "Download", ()),
        ("changelog", "Changelog", ("changes", "whatsnew", "history")),
        ("releasenotes", "Release notes", ()),
        ("documentation", "Documentation", ("docs",)),
        ("issues", "Issues", ("bugs", "issue", "tracker", "issuetracker", "bugtracker")),
        ("funding", "Funding", ("sponsor", "donate", "donation")),
    )
    for alias in (kind, *aliases)
}
_LABEL_NOISE = str.maketrans("", "", string.punctuation + string.whitespace)
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")
# An address worth a mailto link: one "@" between non-empty parts, nothing that
# could end an attribute or a header (spaces, controls, angle brackets, quotes).
_ADDRESS = re.compile(r"[^\s<>\"'@,;:()\\]+@[^\s<>\"'@,;:()\\]+")


def normalize_label(label: str) -> str:
    """Warehouse's `normalize_project_url_label`: no punctuation or whitespace, lower case."""
    return label.translate(_LABEL_NOISE).lower()


def http_url(url: str | None) -> bool:
    """True for an absolute http(s) URL: the only kind a page puts in an `href`.

    Anything else (`javascript:`, `data:`, relative, malformed) is shown as text.
    """
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True, slots=True)
class ProjectLink:
    """A Project-URL (or Home-page / Download-URL)."""

    label: str  # the well-known title, or the label as the metadata wrote it
    url: str
    kind: str | None  # the well-known label (`source`, `issues`...), None if not one

    @property
    def linkable(self) -> bool:
        return http_url(self.url)


@dataclass(frozen=True, slots=True)
class Person:
    """An author or maintainer: a name, an e-mail address, or both."""

    name: str | None
    email: str | None  # an address that passed `_ADDRESS`, safe in a mailto link

    @property
    def mailto(self) -> str | None:
        return f"mailto:{quote(self.email, safe='@+')}" if self.email else None

    @property
    def label(self) -> str:
        """What the page shows: the name, else the address."""
        return self.name or self.email or ""


def parse_people(name: str | None, emails: str | None) -> tuple[Person, ...]:
    """The people of an Author / Author-email (or Maintainer) pair, as PyPI shows them.

    `emails` is an RFC 5322 address list (`"Jane Doe" <jane@example.org>, bob@x.org`),
    read by the standard library's `getaddresses`; a part that is no address is kept
    as a name. `name` (the Author field) names the only address when that has no
    name of its own, and is shown as text when no address does. Never raises.
    """
    people: list[Person] = []
    if emails:
        try:
            pairs = getaddresses([emails])
        except Exception:  # the parser's contract does not promise never to raise
            pairs = [("", emails)]
        for display, address in pairs:
            display, address = display.strip(), address.strip()
            if address and not _ADDRESS.fullmatch(address):
                display, address = display or address, ""
            if display or address:
                people.append(Person(display or None, address or None))
        if not people and emails.strip():
            people.append(Person(emails.strip(), None))
    if name and not any(person.name for person in people):
        if len(people) == 1:
            return (Person(name, people[0].email),)
        people.insert(0, Person(name, None))
    return tuple(people)


@dataclass(frozen=True, slots=True)
class Dependency:
    """One Requires-Dist entry. `project` is None when the entry cannot be parsed."""

    text: str  # the requirement as written
    project: str | None  # normalised name, for the link to its page
    name: str
    extras: tuple[str, ...] = ()
    specifier: str = ""
    marker: str | None = None
    extra: str | None = None  # the extra that pulls it in (`extra == "x"` in the marker)


@dataclass(frozen=True, slots=True)
class ProjectMetadata:
    """The fields of one distribution's core metadata that a page shows."""

    name: str
    version: str
    summary: str | None = None
    description: str | None = None
    description_content_type: str | None = None
    keywords: tuple[str, ...] = ()
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license_expression: str | None = None
    license: str | None = None
    license_files: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()
    requires_python: str | None = None
    dependencies: tuple[Dependency, ...] = ()
    provides_extra: tuple[str, ...] = ()
    links: tuple[ProjectLink, ...] = ()
    platforms: tuple[str, ...] = ()
    requires_external: tuple[str, ...] = ()
    dynamic: tuple[str, ...] = ()

    @property
    def authors(self) -> tuple[Person, ...]:
        return parse_people(self.author, self.author_email)

    @property
    def maintainers(self) -> tuple[Person, ...]:
        return parse_people(self.maintainer, self.maintainer_email)

    @property
    def license_text(self) -> str | None:
        """License-Expression first (PEP 639); else the first line of legacy License."""
        if self.license_expression:
            return self.license_expression
        if self.license and self.license.strip():
            return self.license.strip().splitlines()[0]
        return None

    @property
    def classifier_groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Classifiers grouped by their first segment, as PyPI's sidebar shows them."""
        groups: dict[str, list[str]] = {}
        for classifier in self.classifiers:
            head, _, rest = classifier.partition(" :: ")
            groups.setdefault(head.strip(), []).append(rest.strip() or head.strip())
        return tuple((head, tuple(items)) for head, items in groups.items())

    @property
    def dependency_names(self) -> tuple[str, ...]:
        """The normalised names of every parsable dependency, once each, in order."""
        return tuple(dict.fromkeys(d.project for d in self.dependencies if d.project))


def parse_metadata(content: bytes) -> ProjectMetadata:
    """Display values from METADATA / PKG-INFO bytes (any Metadata-Version).

    Never raises: malformed fields are left out or kept as text, and a file
    that is not metadata at all gives empty values.
    """
    raw, unparsed = parse_email(content)
    return ProjectMetadata(
        name=raw.get("name", ""),
        version=raw.get("version", ""),
        summary=_clean(raw.get("summary")),
        description=raw.get("description"),
        description_content_type=raw.get("description_content_type"),
        keywords=tuple(raw.get("keywords", [])),
        author=_clean(raw.get("author")),
        author_email=_clean(raw.get("author_email")),
        maintainer=_clean(raw.get("maintainer")),
        maintainer_email=_clean(raw.get("maintainer_email")),
        license_expression=_clean(raw.get("license_expression")),
        license=raw.get("license"),
        license_files=tuple(raw.get("license_files", [])),
        classifiers=tuple(raw.get("classifiers", [])),
        requires_python=_clean(raw.get("requires_python")),
        dependencies=tuple(parse_dependency(text) for text in raw.get("requires_dist", [])),
        provides_extra=tuple(raw.get("provides_extra", [])),
        links=tuple(
            _links(raw.get("home_page"), raw.get("download_url"), _project_urls(raw, unparsed))
        ),
        platforms=tuple(raw.get("platforms", [])),
        requires_external=tuple(raw.get("requires_external", [])),
        dynamic=tuple(raw.get("dynamic", [])),
    )


def parse_dependency(text: str) -> Dependency:
    """One Requires-Dist value; an unparsable one keeps its text and no project."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return Dependency(text=text, project=None, name=text.split(";")[0].strip())
    marker = str(requirement.marker) if requirement.marker is not None else None
    extra = _EXTRA_MARKER.search(marker) if marker else None
    return Dependency(
        text=text,
        project=canonicalize_name(requirement.name),
        name=requirement.name,
        extras=tuple(sorted(requirement.extras)),
        specifier=str(requirement.specifier) or (f"@ {requirement.url}" if requirement.url else ""),
        marker=marker,
        extra=extra.group(1) if extra else None,
    )


def _project_urls(raw: RawMetadata, unparsed: dict[str, list[str]]) -> list[tuple[str, str]]:
    # packaging refuses the whole field when two labels repeat; fall back to the raw lines.
    parsed = raw.get("project_urls")
    if parsed is not None:
        return list(parsed.items())
    pairs = []
    for line in unparsed.get("project-url", []):
        label, _, url = line.partition(",")
        pairs.append((label.strip(), url.strip()))
    return pairs


def _links(
    home_page: str | None, download_url: str | None, project_urls: Iterable[tuple[str, str]]
) -> list[ProjectLink]:
    """Project URLs with well-known titles; Home-page and Download-URL as their kinds."""
    pairs = [("Homepage", home_page or ""), ("Download", download_url or ""), *project_urls]
    links: list[ProjectLink] = []
    seen: set[str] = set()
    for label, url in pairs:
        url = url.strip()
        if not url or url in seen:
            continue
        seen.add(url)
        kind, title = WELL_KNOWN_LABELS.get(normalize_label(label), (None, label))
        links.append(ProjectLink(title, url, kind))
    return links


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    # Old setuptools wrote the literal UNKNOWN for missing fields.
    return value if value and value != "UNKNOWN" else None
