"""The query language: free words, filters, quoting, and the messages for mistakes."""

from __future__ import annotations

import pytest

from packyard.search.query import MAX_QUERY_LENGTH, QuerySyntaxError, parse_query


def test_free_words_become_terms_and_an_exact_name() -> None:
    query = parse_query("Acme_Core")
    assert query.terms == ("acme", "core")
    assert query.exact_name == "acme-core"
    assert not query.empty


def test_filters() -> None:
    query = parse_query(
        'web source:in-house depends:Acme_Core author:"Jane Doe" classifier:"Framework :: Django"'
    )
    assert query.terms == ("web",)
    assert query.source == "in-house"
    assert query.depends == ("acme-core",)
    assert query.authors == ("Jane Doe",)
    assert query.classifiers == ("Framework :: Django",)


def test_filters_alone_are_a_query() -> None:
    query = parse_query("source:PUBLIC")
    assert query.source == "public"
    assert query.terms == ()
    assert query.exact_name is None
    assert not query.empty


def test_has_advisories_alone_is_a_query() -> None:
    query = parse_query("has:Advisories")
    assert query.has_advisories
    assert not query.empty
    assert parse_query("web has:advisories").terms == ("web",)
    assert not parse_query("web").has_advisories


def test_double_colons_are_words_not_filters() -> None:
    assert parse_query("Framework::Django").terms == ("framework", "django")


@pytest.mark.parametrize("text", ["", "   ", "-- ..."])
def test_nothing_to_search(text: str) -> None:
    assert parse_query(text).empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour:red", "Unknown filter 'colour:'"),
        ("author:", "needs a value"),
        ('author:""', "needs a value"),
        ("source:elsewhere", "source: is one of in-house or public"),
        ("source:public source:in-house", "only once"),
        ("has:wheels", "has: is one of advisories"),
        ("has:", "needs a value"),
        ('"unclosed', "not closed"),
        ("x" * (MAX_QUERY_LENGTH + 1), "too long"),
    ],
)
def test_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message):
        parse_query(text)


def test_yanked_shown_only_when_asked_the_last_value_winning() -> None:
    assert not parse_query("req").include_yanked
    assert parse_query("req yanked:show").include_yanked
    assert not parse_query("req yanked:show yanked:HIDE").include_yanked
    assert parse_query("yanked:show").empty  # it widens a search, it is not one
    with pytest.raises(QuerySyntaxError, match="yanked: is one of show or hide"):
        parse_query("yanked:all")
