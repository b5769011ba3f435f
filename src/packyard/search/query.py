"""The search box's query language.

    free words            match a project's name and summary (every word, as a prefix)
    source:in-house       only projects of this server's store
    source:public         only projects seen through an upstream
    depends:NAME          projects that require NAME (any extra, any marker)
    author:TEXT           author or maintainer contains TEXT
    classifier:TEXT       a classifier contains TEXT, e.g. classifier:"Framework :: Django"
    has:advisories        projects that known vulnerabilities (OSV records in force) name
    yanked:show           also projects whose every release is yanked (hidden by default)

A value with spaces is written in double quotes. Filters of different kinds
combine with AND; repeating `depends:`, `author:` or `classifier:` requires
all of them. A mistake raises `QuerySyntaxError`, whose message is written for
the person who typed the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import canonicalize_name

MAX_QUERY_LENGTH = 500
SOURCES = ("in-house", "public")
HAS = ("advisories",)
YANKED = ("show", "hide")
FILTERS = ("source", "depends", "author", "classifier", "has", "yanked")
# A token: `key:"quoted value"`, `key:value`, `"quoted words"` or a bare word.
_TOKEN = re.compile(r'\s*(?:(?P<key>[A-Za-z_-]+):(?!:))?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))?')
# What FTS engines index as one term: letters and digits (the name's `-_.` split it).
_TERM = re.compile(r"[^\W_]+")


class QuerySyntaxError(ValueError):
    """The query cannot be understood; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query. `terms` are lower-case FTS terms from the free words;
    `exact_name` is the normalised free text, to rank an exact name match first."""

    text: str
    terms: tuple[str, ...] = ()
    exact_name: str | None = None
    source: str | None = None
    depends: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()
    has_advisories: bool = False
    include_yanked: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.terms
            or self.source
            or self.depends
            or self.authors
            or self.classifiers
            or self.has_advisories
        )


def parse_query(text: str) -> SearchQuery:
    """Parse `text` (see the module docstring).

    Raises:
        QuerySyntaxError: an unknown filter, a filter without a value, an
            unbalanced quote, an unknown source, or a query that is too long.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"The query is too long: at most {MAX_QUERY_LENGTH} characters.")
    if text.count('"') % 2:
        raise QuerySyntaxError('A double quote (") is not closed.')
    words: list[str] = []
    filters: dict[str, list[str]] = {key: [] for key in FILTERS}
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:  # only trailing space is left
            break
        position = match.end()
        key, value = match["key"], match["quoted"] if match["quoted"] is not None else match["bare"]
        if key is None:
            if value:
                words.append(value)
            continue
        _add_filter(filters, key.lower(), (value or "").strip())
    return _build(text, words, filters)


def _add_filter(filters: dict[str, list[str]], key: str, value: str) -> None:
    if key not in filters:
        known = ", ".join(f"{name}:" for name in FILTERS)
        raise QuerySyntaxError(f"Unknown filter {key + ':'!r}. The filters are {known}.")
    if not value:
        raise QuerySyntaxError(f"The filter {key + ':'!r} needs a value, e.g. {key}:something.")
    if key == "source":
        value = value.lower()
        if value not in SOURCES:
            raise QuerySyntaxError(f"source: is one of {' or '.join(SOURCES)}, not {value!r}.")
        if filters["source"] and filters["source"][0] != value:
            raise QuerySyntaxError("Give source: only once.")
    if key == "has":
        value = value.lower()
        if value not in HAS:
            raise QuerySyntaxError(f"has: is one of {', '.join(HAS)}, not {value!r}.")
    if key == "yanked":
        value = value.lower()
        if value not in YANKED:
            raise QuerySyntaxError(f"yanked: is one of {' or '.join(YANKED)}, not {value!r}.")
    if key == "depends":
        value = canonicalize_name(value)
    filters[key].append(value)


def _build(text: str, words: list[str], filters: dict[str, list[str]]) -> SearchQuery:
    terms = tuple(dict.fromkeys(t.lower() for word in words for t in _TERM.findall(word)))
    free = " ".join(words)
    return SearchQuery(
        text=text,
        terms=terms,
        exact_name=canonicalize_name(free.replace(" ", "-")) if free else None,
        source=filters["source"][0] if filters["source"] else None,
        depends=tuple(dict.fromkeys(filters["depends"])),
        authors=tuple(dict.fromkeys(filters["author"])),
        classifiers=tuple(dict.fromkeys(filters["classifier"])),
        has_advisories="advisories" in filters["has"],
        # The last one given wins, as a form's repeated field would.
        include_yanked=filters["yanked"][-1:] == ["show"],
    )
