"""OSV API queries: read as osv.dev reads them, or refused with the reason it would give."""

from __future__ import annotations

import pytest

from packyard.advisories.queries import (
    ELSEWHERE,
    FIRST_PAGE_TOKEN,
    MAX_BATCH,
    Query,
    QueryRejected,
    parse_purl,
    read_batch,
    read_query,
)


def package(name: str, ecosystem: str = "PyPI") -> dict[str, object]:
    return {"package": {"name": name, "ecosystem": ecosystem}}


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        ({**package("jinja2"), "version": "2.10"}, Query("jinja2", "2.10")),
        # Names are normalised as PyPI normalises them.
        ({**package("Jinja2"), "version": "2.10"}, Query("jinja2", "2.10")),
        ({**package("Zope.Interface_x"), "version": "1"}, Query("zope-interface-x", "1")),
        # No version (or an empty one): every record of the package.
        (package("django"), Query("django", None)),
        ({**package("django"), "version": ""}, Query("django", None)),
        # null is absent, as in protobuf's JSON mapping.
        ({**package("django"), "version": None, "commit": None}, Query("django", None)),
        # No ecosystem, with a version: osv.dev looks everywhere; packyard holds PyPI's.
        ({"package": {"name": "django"}, "version": "3.2"}, Query("django", "3.2")),
        ({"package": {"purl": "pkg:pypi/django@3.2.0"}}, Query("django", "3.2.0")),
        ({"package": {"purl": "pkg:pypi/Django"}, "version": "3.2.0"}, Query("django", "3.2.0")),
        ({"package": {"purl": "pkg:pypi/django"}}, Query("django", None)),
        # A purl's scheme and type are case-insensitive; qualifiers and subpath say nothing here.
        ({"package": {"purl": "PKG:PyPI/django@3.2.0?a=b#sub/path"}}, Query("django", "3.2.0")),
        (
            {"package": {"purl": "pkg:pypi/zope.interface@5.0%2Blocal"}},
            Query("zope-interface", "5.0+local"),
        ),
        # What packyard holds nothing of: answered with nothing.
        ({"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"}, ELSEWHERE),
        ({"commit": "6879efc2", **package("django")}, ELSEWHERE),  # osv.dev ignores the package
        ({**package("left-pad", "npm"), "version": "1.0.0"}, ELSEWHERE),
        ({**package("curl", "Debian:12"), "version": "7.0"}, ELSEWHERE),
        ({"package": {"purl": "pkg:npm/%40angular/core@1.0.0"}}, ELSEWHERE),
        ({"package": {"purl": "pkg:no-such-type/x@1"}}, ELSEWHERE),
        # osv.dev's "first page" token asks for the first page: all of it here.
        ({**package("django"), "page_token": FIRST_PAGE_TOKEN}, Query("django", None)),
        ({**package("django"), "page_token": ""}, Query("django", None)),
    ],
)
def test_a_query_reads_as_what_to_look_up(raw: object, query: Query) -> None:
    assert read_query(raw) == query


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "a query must be a JSON object"),
        ({}, "invalid query: a 'package' (or a 'commit') is required"),
        ({"version": "1.0"}, "a 'package' (or a 'commit') is required"),
        ({"package": "django"}, "'package' must be a JSON object"),
        ({"package": {"ecosystem": "PyPI"}, "version": "1"}, "'name' (or a 'purl') is required"),
        ({"package": {"name": "", "ecosystem": "PyPI"}}, "'name' (or a 'purl') is required"),
        ({"package": {"name": "django"}}, "'ecosystem' is required without a version"),
        ({**package("django"), "version": 3.2}, "'version' must be a string, not float"),
        (
            {"package": {"name": ["django"], "ecosystem": "PyPI"}},
            "'name' must be a string, not list",
        ),
        ({**package("django"), "verison": "3.2"}, "a query has no field 'verison'"),
        (
            {"package": {"name": "django", "ecosystem": "PyPI", "version": "1"}},
            "has no field 'version'",
        ),
        (
            {**package("django"), "version": "1", "commit": "abcd"},
            "set 'commit' or 'version', not both",
        ),
        ({**package("django"), "version": "", "commit": "abcd"}, "not both"),
        ({"commit": "not-a-hash"}, "invalid hash"),
        ({"commit": "abc"}, "invalid hash"),  # half a byte
        ({"commit": ""}, "invalid hash"),
        (
            {**package("django", "pypi"), "version": "1"},
            "invalid ecosystem: 'pypi' is not an OSV ecosystem (names are case-sensitive: PyPI)",
        ),
        ({**package("django", "Bogus"), "version": "1"}, "invalid ecosystem: 'Bogus'"),
        (
            {"package": {"purl": "pkg:pypi/django", "name": "django"}},
            "name specified in a PURL query",
        ),
        (
            {"package": {"purl": "pkg:pypi/django", "ecosystem": "PyPI"}},
            "ecosystem specified in a PURL query",
        ),
        (
            {"package": {"purl": "pkg:pypi/django@3.2"}, "version": "3.2"},
            "version specified in params and PURL query",
        ),
        (
            {"package": {"purl": "pypi/django@3.2"}},
            "invalid purl 'pypi/django@3.2': a package URL starts with 'pkg:'",
        ),
        ({"package": {"purl": "pkg:pypi"}}, "expected pkg:<type>/<name>[@<version>]"),
        ({"package": {"purl": "pkg:pypi/@1.0"}}, "expected pkg:<type>/<name>[@<version>]"),
        ({"package": {"purl": "pkg:pypi/acme/django@1"}}, "a pypi package URL has no namespace"),
        (
            {**package("django"), "page_token": "MTIzNDU2"},
            "invalid cursor: packyard answers every query in one page",
        ),
        ({**package("django"), "version": "1" * 300}, "'version' is longer than 256"),
    ],
)
def test_a_query_osv_dev_would_refuse_is_refused_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(QueryRejected) as refused:
        read_query(raw)
    assert message in str(refused.value)


def test_a_batch_reads_its_queries_in_order() -> None:
    raw = {
        "queries": [
            {**package("jinja2"), "version": "2.10"},
            {"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"},
            {"package": {"purl": "pkg:pypi/requests@2.19.0"}},
        ]
    }
    assert read_batch(raw) == [Query("jinja2", "2.10"), ELSEWHERE, Query("requests", "2.19.0")]


@pytest.mark.parametrize("raw", [{}, {"queries": []}, {"queries": None}])
def test_an_empty_batch_has_no_queries(raw: object) -> None:
    assert read_batch(raw) == []


def test_a_batch_names_the_index_of_the_query_it_refuses() -> None:
    raw = {"queries": [package("django"), {**package("flask", "pypi"), "version": "1"}]}
    with pytest.raises(QueryRejected, match=r"^error in query at index 1: invalid ecosystem"):
        read_batch(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([package("django")], "a batch must be a JSON object"),
        ({"queries": package("django")}, "'queries' must be a list of queries"),
        ({"queries": [], "page_token": "x"}, "a batch has no field 'page_token'"),
        (
            {"queries": ["django"]},
            "error in query at index 0: invalid query: a query must be a JSON object",
        ),
    ],
)
def test_a_malformed_batch_is_refused(raw: object, message: str) -> None:
    with pytest.raises(QueryRejected, match=message):
        read_batch(raw)


def test_a_batch_holds_at_most_osv_devs_limit_of_queries() -> None:
    query = {**package("django"), "version": "3.2"}
    assert len(read_batch({"queries": [query] * MAX_BATCH})) == MAX_BATCH
    with pytest.raises(QueryRejected, match=f"too many queries: {MAX_BATCH + 1} in one batch"):
        read_batch({"queries": [query] * (MAX_BATCH + 1)})


@pytest.mark.parametrize(
    ("purl", "parts"),
    [
        ("pkg:pypi/django@3.2.0", ("pypi", "django", "3.2.0")),
        ("pkg://pypi/django", ("pypi", "django", None)),
        ("pkg:maven/org.apache/commons@1.0", ("maven", "commons", "1.0")),
        ("pkg:npm/%40scope/name@1.0.0", ("npm", "name", "1.0.0")),
        ("pkg:golang/github.com/x/y@v1.2.3", ("golang", "y", "v1.2.3")),
    ],
)
def test_a_purl_gives_its_type_name_and_version(
    purl: str, parts: tuple[str, str, str | None]
) -> None:
    assert parse_purl(purl) == parts
