"""Ranking and the sidebar's filters, on projects chosen so that alphabetical order is wrong."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from typing_extensions import override

from packyard.browser.catalog import LocalCatalog, ProjectState
from packyard.model import SOURCE_LOCAL
from packyard.search import ranking
from packyard.search.documents import SearchDocument
from packyard.search.index import SearchIndex, open_index
from packyard.search.popularity import FixedPopularity
from packyard.search.query import parse_query
from packyard.search.sync import InHouseSync
from tests.unit.fakes import MemoryRepository

DOCUMENTS = (
    # Alphabetically first, but "req" is only in its summary: relevance, last tier.
    SearchDocument("aardvark", "aardvark", "pypi", summary="A req parser"),
    SearchDocument("flask-req", "Flask-Req", "pypi", summary="Requests for Flask"),
    SearchDocument("req", "req", SOURCE_LOCAL, summary="The exact one"),
    SearchDocument("req-tools", "req-tools", SOURCE_LOCAL, summary="Tools"),
    SearchDocument("requests", "requests", "pypi", summary="HTTP for Humans"),
    SearchDocument("zope-req", "zope.req", "pypi", summary="Zope's"),
    SearchDocument(
        "old-req",
        "old-req",
        SOURCE_LOCAL,
        summary="Every release yanked",
        classifiers=("Framework :: Django",),
        yanked=True,
    ),
    SearchDocument(
        "django-req", "django-req", "pypi", classifiers=("Framework :: Django", "Typing :: Typed")
    ),
)
DOWNLOADS = {"requests": 1000, "req-tools": 10, "zope-req": 50, "flask-req": 5, "req": 1}


@pytest.fixture
def index(database_url: str) -> Iterator[SearchIndex]:
    """The index on SQLite FTS5, then on PostgreSQL full-text search."""
    index = open_index(database_url)
    index.upsert(DOCUMENTS)
    index.set_downloads(FixedPopularity(DOWNLOADS).downloads())
    yield index
    index.close()


def names(index: SearchIndex, query: str) -> list[str]:
    return [hit.name for hit in index.search(parse_query(query)).hits]


def test_exact_then_prefix_then_name_words_then_summary_each_by_downloads(
    index: SearchIndex,
) -> None:
    assert names(index, "req") == [
        "req",  # exact, though downloaded least
        "requests",  # a prefix, downloaded more than req-tools (alphabetically after it)
        "req-tools",
        "zope-req",  # a word of the name, downloaded more than flask-req and django-req
        "flask-req",
        "django-req",
        "aardvark",  # the summary only
    ]


def test_downloads_are_replaced_not_added(index: SearchIndex) -> None:
    index.set_downloads({"req-tools": 2000})
    assert names(index, "req")[:3] == ["req", "req-tools", "requests"]
    assert index.get("requests") == DOCUMENTS[4]  # back to 0
    hit = index.search(parse_query("req-tools")).hits[0]
    assert (hit.name, hit.downloads) == ("req-tools", 2000)


def test_without_popularity_equals_are_by_name(database_url: str) -> None:
    index = open_index(database_url)
    try:
        index.upsert(DOCUMENTS)
        assert names(index, "source:public") == [
            "aardvark",
            "django-req",
            "flask-req",
            "requests",
            "zope-req",
        ]
    finally:
        index.close()


def test_filters_only_list_in_house_first_then_by_downloads(index: SearchIndex) -> None:
    assert names(index, 'classifier:"Framework :: Django" yanked:show') == [
        "old-req",
        "django-req",
    ]
    assert names(index, "source:public")[:2] == ["requests", "zope-req"]


def test_yanked_projects_are_hidden_unless_asked_for(index: SearchIndex) -> None:
    assert "old-req" not in names(index, "req")
    assert index.search(parse_query("req")).total == 7
    assert "old-req" in names(index, "req yanked:show")
    assert "old-req" not in names(index, "req yanked:show yanked:hide")  # the last one wins


def test_sidebar_filters_combine(index: SearchIndex) -> None:
    assert names(index, "req source:in-house") == ["req", "req-tools"]
    assert names(index, 'req classifier:"Typing :: Typed"') == ["django-req"]
    within = index.search(parse_query("req"), within={"zope-req", "aardvark", "old-req"})
    assert [hit.name for hit in within.hits] == ["zope-req", "aardvark"]


def test_an_index_from_before_gets_the_new_columns(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('old') / 'search.db'}"
    old = open_index(url)
    with old.engine.begin() as connection:
        connection.execute(text("DROP TABLE search_projects"))
        connection.execute(
            text(
                "CREATE TABLE search_projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                "display_name TEXT NOT NULL, source TEXT NOT NULL, in_house INTEGER NOT NULL, "
                "summary TEXT NOT NULL, version TEXT NOT NULL, author TEXT NOT NULL, "
                "classifiers TEXT NOT NULL, fingerprint TEXT NOT NULL, name_terms TEXT NOT NULL)"
            )
        )
    old.close()
    index = open_index(url)
    try:
        index.upsert(DOCUMENTS[:1])
        index.set_downloads({"aardvark": 3})
        assert names(index, "req") == ["aardvark"]
    finally:
        index.close()


class NoProjects(LocalCatalog):
    """A store with nothing in it, whose serial never moves."""

    def __init__(self) -> None:
        pass

    @override
    def serial(self) -> int:
        return 1

    @override
    def projects(self) -> list[ProjectState]:
        return []


@pytest.mark.anyio
async def test_the_sync_copies_the_popularity_source_when_due(index: SearchIndex) -> None:
    now = [0.0]
    popularity = FixedPopularity({"flask-req": 5000})
    sync = InHouseSync(
        index,
        NoProjects(),
        MemoryRepository("pypi", {}),
        interval=0,
        popularity=popularity,
        popularity_interval=60,
        clock=lambda: now[0],
    )
    await sync.refresh()  # the empty store also drops the in-house documents
    assert names(index, "req")[:2] == ["requests", "flask-req"]
    index.set_downloads({})
    now[0] = 59.0
    await sync.refresh()  # not due yet
    assert index.search(parse_query("flask-req")).hits[0].downloads == 0
    now[0] = 60.0
    await sync.refresh()
    assert index.search(parse_query("flask-req")).hits[0].downloads == 5000


def _crowd() -> tuple[list[SearchDocument], dict[str, int]]:
    """Projects whose ranking needs every part of the order: names in each tier,
    downloads with many ties (and many zeros), summaries of varied relevance."""
    rng = random.Random(7)
    words = ("pro", "proto", "tool", "kit", "web", "data", "probe", "api")
    documents = []
    for i in range(400):
        name = f"{rng.choice(words)}-{rng.choice(words)}-{i}"
        summary = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 9)))
        documents.append(SearchDocument(name, name, "pypi", summary=summary, yanked=i % 37 == 5))
    documents.append(SearchDocument("pro", "pro", SOURCE_LOCAL, summary="The exact one"))
    downloads = {d.name: rng.choice((0, 0, 0, 1, 2, 5, 5, 40)) for d in documents}
    return documents, downloads


def test_scoring_only_the_candidates_orders_every_page_as_scoring_all(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = open_index(database_url)
    try:
        documents, downloads = _crowd()
        index.upsert(documents)
        index.set_downloads(downloads)
        for text in ("pro", "web", "pro kit", "data source:public", "a", "probe yanked:show"):
            query = parse_query(text)
            total = index.search(query).total
            pages = [(limit, offset) for limit in (1, 7, 20) for offset in range(0, total + 3, 13)]
            scored_all = [index.search(query, limit=n, offset=o).hits for n, o in pages]
            monkeypatch.setattr(ranking, "SCORE_ALL_UP_TO", 0)  # every query in two steps
            assert [index.search(query, limit=n, offset=o).hits for n, o in pages] == scored_all
            monkeypatch.undo()
            assert scored_all[0], text  # each query finds something
    finally:
        index.close()


def test_the_count_stops_at_its_limit(index: SearchIndex) -> None:
    capped = index.search(parse_query("req"), limit=3, count_limit=5)
    assert (capped.total, capped.capped) == (5, True)
    assert [hit.name for hit in capped.hits] == ["req", "requests", "req-tools"]
    exact = index.search(parse_query("req"), count_limit=7)
    assert (exact.total, exact.capped) == (7, False)
