"""The search index on SQLite FTS5 (and on PostgreSQL when a server is available)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from packyard.model import SOURCE_LOCAL
from packyard.search.documents import SearchDocument
from packyard.search.index import SearchIndex, open_index
from packyard.search.query import parse_query

DOCUMENTS = (
    SearchDocument(
        "acme-core",
        "acme-core",
        SOURCE_LOCAL,
        summary="Core helpers of Acme",
        author="Jane Doe <jane@acme.example>",
        classifiers=("Framework :: Django", "Programming Language :: Python :: 3"),
        fingerprint="acme_core-1.0-py3-none-any.whl",
    ),
    SearchDocument(
        "acme-tools",
        "Acme.Tools",
        SOURCE_LOCAL,
        summary="Tools built on the core",
        dependencies=("acme-core", "requests"),
    ),
    SearchDocument("requests", "requests", "pypi", summary="HTTP for Humans"),
    SearchDocument("core", "core", "pypi", summary="Something else entirely"),
    SearchDocument(
        "httpx", "httpx", "pypi", summary="A next-generation HTTP client", dependencies=("idna",)
    ),
)


@pytest.fixture
def index(database_url: str) -> Iterator[SearchIndex]:
    """The index on SQLite FTS5, then on PostgreSQL full-text search (`database_url`)."""
    index = open_index(database_url)
    index.upsert(DOCUMENTS)
    yield index
    index.close()


def names(index: SearchIndex, text: str) -> list[str]:
    return [hit.name for hit in index.search(parse_query(text)).hits]


def test_exact_name_comes_first(index: SearchIndex) -> None:
    assert names(index, "core")[0] == "core"
    assert set(names(index, "core")) == {"core", "acme-core", "acme-tools"}


def test_words_match_as_prefixes_in_name_and_summary(index: SearchIndex) -> None:
    assert names(index, "hum") == ["requests"]
    assert names(index, "acme too") == ["acme-tools"]
    assert names(index, "acmetools") == ["acme-tools"]


def test_name_outranks_summary(index: SearchIndex) -> None:
    assert names(index, "http") == ["httpx", "requests"]


def test_source_filter(index: SearchIndex) -> None:
    assert names(index, "core source:public") == ["core"]
    assert names(index, "core source:in-house") == ["acme-core", "acme-tools"]


def test_depends_author_classifier(index: SearchIndex) -> None:
    assert names(index, "depends:Acme_Core") == ["acme-tools"]
    assert names(index, "depends:acme-core depends:requests") == ["acme-tools"]
    assert names(index, "depends:acme-core depends:idna") == []
    assert names(index, "author:jane") == ["acme-core"]
    assert names(index, 'classifier:"framework :: django"') == ["acme-core"]
    assert names(index, "author:50%") == []  # LIKE wildcards are literal


def test_within_keeps_only_the_names_given(index: SearchIndex) -> None:
    """What `has:advisories` does: the names come from the advisories at query time."""
    query = parse_query("has:advisories")
    found = index.search(query, within={"requests", "httpx", "not-indexed"})
    assert sorted(hit.name for hit in found.hits) == ["httpx", "requests"]
    assert found.total == 2
    assert index.search(parse_query("http"), within={"httpx"}).hits[0].name == "httpx"
    assert index.search(parse_query("http"), within={"httpx"}).total == 1
    assert index.search(query, within=()).total == 0
    many = {f"name-{i}" for i in range(40_000)} | {"core"}  # past SQLite's parameter limit
    assert [hit.name for hit in index.search(query, within=many).hits] == ["core"]


def test_results_page_and_total(index: SearchIndex) -> None:
    results = index.search(parse_query("source:public"), limit=2, offset=2)
    assert results.total == 3
    assert [hit.name for hit in results.hits] == ["requests"]


def test_empty_query_matches_nothing(index: SearchIndex) -> None:
    assert index.search(parse_query("  ")).total == 0


def test_documents_round_trip(index: SearchIndex) -> None:
    assert index.get("acme-core") == DOCUMENTS[0]
    assert index.get("acme-tools") == DOCUMENTS[1]
    assert index.get("nope") is None


def test_used_by_counts_in_house_projects_only(index: SearchIndex) -> None:
    assert [d.name for d in index.used_by("acme-core")] == ["acme-tools"]
    assert index.used_by("idna") == ()  # httpx is public


def test_counts_and_fingerprints(index: SearchIndex) -> None:
    assert index.counts() == (2, 3)
    assert index.in_house_fingerprints()["acme-core"] == "acme_core-1.0-py3-none-any.whl"
    assert index.public_names() == {"requests", "core", "httpx"}


def test_upsert_replaces_terms_and_dependencies(index: SearchIndex) -> None:
    index.upsert([SearchDocument("acme-tools", "acme-tools", SOURCE_LOCAL, summary="Renamed")])
    assert names(index, "built") == []
    assert names(index, "renamed") == ["acme-tools"]
    assert names(index, "depends:requests") == []


def test_public_never_replaces_in_house(index: SearchIndex) -> None:
    index.upsert([SearchDocument("acme-core", "acme-core", "pypi", summary="Squatted")])
    assert index.record_public("acme-core", "acme-core", "pypi") is False
    document = index.get("acme-core")
    assert document is not None
    assert document.in_house
    assert names(index, "squatted") == []


def test_in_house_replaces_public(index: SearchIndex) -> None:
    index.upsert([SearchDocument("requests", "requests", SOURCE_LOCAL, summary="Our fork")])
    assert names(index, "requests source:in-house") == ["requests"]


def test_record_public(index: SearchIndex) -> None:
    assert index.record_public("newthing", "NewThing", "") is True
    assert index.record_public("newthing", "NewThing", "mirror") is False
    document = index.get("newthing")
    assert document is not None
    assert (document.display_name, document.source) == ("NewThing", "mirror")
    assert names(index, "newth") == ["newthing"]


def test_remove(index: SearchIndex) -> None:
    index.remove(["acme-tools", "unknown"])
    assert names(index, "tools") == []
    assert index.used_by("acme-core") == ()
    assert index.counts() == (1, 3)


def test_an_index_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'search.db'}"
    first = open_index(url)
    first.upsert(DOCUMENTS[:1])
    first.close()
    second = open_index(url)  # `create` again: a no-op on existing tables
    assert second.get("acme-core") == DOCUMENTS[0]
    second.close()


def test_an_index_in_memory() -> None:
    index = open_index("sqlite://")
    index.upsert(DOCUMENTS)
    assert names(index, "core")[0] == "core"
    index.close()


def test_a_project_removed_after_ranking_is_left_out_of_the_page(index: SearchIndex) -> None:
    # Ranking and reading the rows are separate statements; on PostgreSQL a removal
    # can fall between them.
    with index.engine.connect() as connection:
        ids = [row.id for row in connection.execute(text("SELECT id FROM search_projects"))]
        index.remove(["requests"])
        rows = index._rows(connection, [*ids, max(ids) + 1000])
    found = [row["name"] for row in rows]
    assert "requests" not in found
    assert len(found) == len(ids) - 1
