"""What the search index stores about a project, and what a search returns."""

from __future__ import annotations

from dataclasses import dataclass

from packyard.browser.metadata import ProjectMetadata
from packyard.model import SOURCE_LOCAL


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """One project in the index.

    `name` is normalised; `source` is `SOURCE_LOCAL` for an in-house project,
    else the label of the upstream that served it ("" when not yet known, for
    names indexed from the configuration). `fingerprint` says what an
    in-house document was built from (its newest file), so that a sync only
    rebuilds the documents whose project changed. `yanked`: every release
    of the project is yanked (hidden from results unless asked for).
    `downloads` is what the index last heard from its `Popularity` source
    (ignored when writing a document).
    """

    name: str
    display_name: str
    source: str
    summary: str = ""
    version: str = ""
    author: str = ""
    classifiers: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    fingerprint: str = ""
    yanked: bool = False
    downloads: int = 0

    @property
    def in_house(self) -> bool:
        return self.source == SOURCE_LOCAL

    @property
    def name_terms(self) -> str:
        """The words a name is found by: its parts, and the parts run together."""
        parts = self.name.replace("-", " ")
        joined = self.name.replace("-", "")
        return parts if joined == parts else f"{parts} {joined}"


@dataclass(frozen=True, slots=True)
class SearchResults:
    """One page of hits, best first, and how many there are in all: when
    `capped`, at least `total` (the search stopped counting there)."""

    hits: tuple[SearchDocument, ...]
    total: int
    capped: bool = False


def describe(
    name: str,
    source: str,
    version: str,
    meta: ProjectMetadata,
    *,
    display_name: str | None = None,
    fingerprint: str = "",
    yanked: bool = False,
) -> SearchDocument:
    """The document of a project from its newest release's metadata."""
    people = (meta.author, meta.author_email, meta.maintainer, meta.maintainer_email)
    return SearchDocument(
        name=name,
        display_name=display_name or meta.name or name,
        source=source,
        summary=meta.summary or "",
        version=version,
        author=", ".join(person for person in people if person),
        classifiers=meta.classifiers,
        dependencies=meta.dependency_names,
        fingerprint=fingerprint,
        yanked=yanked,
    )
