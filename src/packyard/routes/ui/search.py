"""`/search?q=…&source=…&classifier=…&advisories=1&yanked=show&page=…`: search results.

The filter sidebar is part of the search's GET form, so every choice lives in
the URL: a result page can be shared, reloaded and gone back to, with no
JavaScript. The sidebar's fields are turned into the query language's filters
(`search.query`) and added to the words typed, so a filter typed by hand and
one ticked in the sidebar mean the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.service import Browser
from packyard.routes.ui.pages import Endpoint
from packyard.routes.ui.templating import Templates
from packyard.search.documents import SearchDocument
from packyard.search.query import SOURCES

MAX_CLASSIFIERS = 10
"""Classifiers a URL may tick (more are ignored): each one is a condition."""
CLASSIFIER_CHOICES = 12
"""Classifiers offered besides the ticked ones: the most common on the page."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the sidebar asks for. `source` is "" (any) or one of `query.SOURCES`."""

    words: str = ""
    source: str = ""
    classifiers: tuple[str, ...] = ()
    advisories: bool = False
    yanked: bool = False

    @classmethod
    def from_params(cls, params: QueryParams) -> Filters:
        """The filters of a request's query string; values that make no sense are dropped."""
        source = params.get("source", "")
        # A double quote would end the quoted value in the query language.
        ticked = (value.replace('"', "").strip() for value in params.getlist("classifier"))
        return cls(
            words=params.get("q", ""),
            source=source if source in SOURCES else "",
            classifiers=tuple(dict.fromkeys(value for value in ticked if value))[:MAX_CLASSIFIERS],
            advisories=params.get("advisories") == "1",
            yanked=params.get("yanked") == "show",
        )

    @property
    def query(self) -> str:
        """The words followed by the sidebar's filters, in the query language."""
        parts = [self.words.strip()]
        if self.source:
            parts.append(f"source:{self.source}")
        parts.extend(f'classifier:"{classifier}"' for classifier in self.classifiers)
        if self.advisories:
            parts.append("has:advisories")
        if self.yanked:
            parts.append("yanked:show")
        return " ".join(part for part in parts if part)

    def url(self, page: int = 1) -> str:
        """The query string of these filters at `page` (the form's own field names)."""
        pairs = [("q", self.words)]
        if self.source:
            pairs.append(("source", self.source))
        pairs.extend(("classifier", classifier) for classifier in self.classifiers)
        if self.advisories:
            pairs.append(("advisories", "1"))
        if self.yanked:
            pairs.append(("yanked", "show"))
        if page > 1:
            pairs.append(("page", str(page)))
        return urlencode(pairs)

    def classifier_choices(self, hits: Sequence[SearchDocument]) -> list[str]:
        """The ticked classifiers and the most common ones of `hits`, alphabetically."""
        common = Counter(classifier for hit in hits for classifier in hit.classifiers)
        offered = [classifier for classifier, _ in common.most_common(CLASSIFIER_CHOICES)]
        return sorted({*self.classifiers, *offered})


def search_endpoint(browser: Browser, templates: Templates) -> Endpoint:
    """GET /search: results, each labelled in-house or with its upstream, and
    the filter sidebar.

    A query that cannot be parsed is answered 400 with the page and the
    message saying what to fix.
    """

    async def search(request: Request) -> Response:
        filters = Filters.from_params(request.query_params)
        try:
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            page = 1
        view = await browser.search(filters.query, page)
        context = {
            "search": view,
            "query": filters.words,
            "filters": filters,
            "classifiers": filters.classifier_choices(view.results.hits),
        }
        return templates.render(request, "search.html", context, 400 if view.error else 200)

    return search
