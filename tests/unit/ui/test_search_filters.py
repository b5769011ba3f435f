"""The search page's filter sidebar: a GET form, so every choice is in the URL."""

from __future__ import annotations

import re

import pytest
from starlette.datastructures import QueryParams

from packyard.routes.ui.search import MAX_CLASSIFIERS, Filters
from packyard.search.documents import SearchDocument
from tests.unit.ui.conftest import Site

pytestmark = pytest.mark.anyio


def projects(html: str) -> list[str]:
    return re.findall(r'class="package-snippet" href="/project/([^/]+)/"', html)


async def test_the_sidebar_filters_and_shows_what_is_ticked(site: Site) -> None:
    response = await site.client.get("/search", params={"q": "acme", "source": "in-house"})
    assert response.status_code == 200
    assert 'name="source" value="in-house" checked' in response.text
    assert 'name="source" value="" checked' not in response.text
    assert 'value="acme"' in response.text  # the box shows the words, not the filters
    assert sorted(projects(response.text)) == ["acme-core", "acme-sdist-only", "acme-tools"]
    public = await site.client.get("/search", params={"q": "acme", "source": "public"})
    assert projects(public.text) == []
    nonsense = await site.client.get("/search", params={"q": "acme", "source": "mars"})
    assert 'name="source" value="" checked' in nonsense.text


async def test_yanked_projects_are_hidden_unless_shown(site: Site) -> None:
    site.yank("acme_core-1.0-py3-none-any.whl", "broken")
    hidden = await site.client.get("/search", params={"q": "acme"})
    assert "acme-core" not in projects(hidden.text)
    shown = await site.client.get("/search", params={"q": "acme", "yanked": "show"})
    assert "acme-core" in projects(shown.text)
    assert 'name="yanked" value="show" checked' in shown.text


async def test_a_result_without_summary_has_no_empty_summary(site: Site) -> None:
    await site.client.get("/simple/httpx/")
    await site.recorder.settle()
    html = (await site.client.get("/search", params={"q": "httpx"})).text
    snippet = html[html.index('class="package-snippet"') :]
    snippet = snippet[: snippet.index("</a>")]
    assert "badge--public" in snippet
    assert "package-snippet__summary" not in snippet


def test_filters_round_trip_through_the_url() -> None:
    filters = Filters(
        words="web api",
        source="public",
        classifiers=("Framework :: Django",),
        advisories=True,
        yanked=True,
    )
    assert Filters.from_params(QueryParams(filters.url(page=3))) == filters
    assert "page=3" in filters.url(page=3)
    assert "page" not in filters.url()
    assert filters.query == (
        'web api source:public classifier:"Framework :: Django" has:advisories yanked:show'
    )


def test_classifier_values_cannot_break_out_of_their_quotes() -> None:
    many = [("classifier", f'Topic :: "{i}"') for i in range(MAX_CLASSIFIERS + 5)]
    filters = Filters.from_params(QueryParams([("q", "x"), *many, ("classifier", " ")]))
    assert len(filters.classifiers) == MAX_CLASSIFIERS
    assert filters.classifiers[0] == "Topic :: 0"


def test_classifier_choices_are_the_ticked_and_the_most_common() -> None:
    hits = [
        SearchDocument("a", "a", "pypi", classifiers=("Typing :: Typed", "Framework :: Django")),
        SearchDocument("b", "b", "pypi", classifiers=("Typing :: Typed",)),
    ]
    filters = Filters(classifiers=("Topic :: Internet",))
    assert filters.classifier_choices(hits) == [
        "Framework :: Django",
        "Topic :: Internet",
        "Typing :: Typed",
    ]
