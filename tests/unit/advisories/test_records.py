"""`read_record`: what it keeps of a record, and every record it refuses, with why."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from packyard.advisories.records import MAX_AFFECTED, MAX_ALIASES, RecordRejected, read_record
from tests.unit.advisories.conftest import raw


def record(**fields: Any) -> dict[str, Any]:
    """A small valid record, with `fields` replacing or adding top-level keys."""
    base: dict[str, Any] = {
        "id": "PYSEC-2099-1",
        "modified": "2024-05-01T10:00:00Z",
        "summary": "A bug",
        "aliases": ["CVE-2099-1", "GHSA-aaaa-bbbb-cccc"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Some_Lib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                ],
            }
        ],
    }
    base.update(fields)
    return base


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def package(name: str, ecosystem: str = "PyPI", **entry: Any) -> dict[str, Any]:
    return {"package": {"ecosystem": ecosystem, "name": name}, **entry}


def test_what_is_kept() -> None:
    advisory = read_record(record(withdrawn="2024-06-01T00:00:00+02:00"))
    assert advisory.id == "PYSEC-2099-1"
    assert advisory.modified == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert advisory.withdrawn == datetime(2024, 5, 31, 22, tzinfo=UTC)
    assert advisory.aliases == ("CVE-2099-1", "GHSA-aaaa-bbbb-cccc")
    assert list(advisory.affected) == ["some-lib"]
    assert advisory.affects("some-lib", "1.9")
    assert not advisory.affects("some-lib", "2.0")
    assert advisory.data["affected"] == record()["affected"]
    assert not advisory.malicious
    assert read_record(record(id="MAL-2024-1234")).malicious


def test_yaml_dates_become_rfc_3339_text_in_the_kept_record() -> None:
    advisory = read_record(raw("gratient/PYSEC-2024-1.yaml"))  # modified: unquoted in YAML
    assert advisory.data["modified"] == "2024-01-03T22:31:36Z"
    assert advisory.modified == datetime(2024, 1, 3, 22, 31, 36, tzinfo=UTC)


def test_several_entries_of_one_record_other_ecosystems_left_out() -> None:
    advisory = read_record(
        record(
            affected=[
                package("lib-a", versions=["1.0"]),
                package("lib-a", versions=["3.0"]),  # a second entry for the same project
                package("lib-b", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "2"}]}]),
                package("lib-a", ecosystem="npm", versions=["9.9"]),
            ]
        )
    )
    assert sorted(advisory.affected) == ["lib-a", "lib-b"]
    assert len(advisory.affected["lib-a"]) == 2
    assert advisory.affects("lib-a", "1.0")
    assert advisory.affects("lib-a", "3.0")
    assert not advisory.affects("lib-a", "9.9")
    assert advisory.affects("lib-b", "2.1")
    assert not advisory.affects("lib-b", "1.0")


def test_a_skipped_range_is_noted_when_the_entry_still_says_something() -> None:
    advisory = read_record(
        record(
            affected=[
                package(
                    "lib",
                    ranges=[{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                    versions=["1.0"],
                )
            ]
        )
    )
    assert advisory.notes == (
        "PYSEC-2099-1: affected[0]: range 0: type 'SEMVER' is not ECOSYSTEM, skipped",
    )


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (["not", "an", "object"], "must be a JSON/YAML object"),
        ("PYSEC-1", "must be a JSON/YAML object"),
        (record(id=None), "is not an OSV id"),
        (record(id=42), "is not an OSV id"),
        (record(id="../x"), "is not an OSV id"),
        (record(id="a/b"), "is not an OSV id"),
        (record(id="PYSEC-1/../../etc"), "is not an OSV id"),
        (record(id="GHSA-<script>"), "is not an OSV id"),
        (record(id="X" * 40 + "-1"), "is not an OSV id"),  # wider than the column
        (record(id="PYSEC-" + "1" * 120), "is not an OSV id"),
        (record(modified=None), "'modified' is missing"),
        (record(modified="yesterday"), "'modified' is not an RFC 3339 time"),
        (record(modified=20240101), "'modified' must be an RFC 3339 time"),
        (record(published="soon"), "'published' is not an RFC 3339 time"),
        (
            record(affected=[package("lib", ecosystem="npm", versions=["1"])]),
            "no package of the PyPI",
        ),
        (record(affected=[]), "no package of the PyPI"),
        (record(affected={"package": "lib"}), "'affected' must be a list"),
        (record(affected=[package("lib")] * (MAX_AFFECTED + 1)), "more than 1000 'affected'"),
        (
            record(
                affected=[
                    package("lib", ranges=[{"type": "SEMVER", "events": [{"introduced": "0"}]}])
                ]
            ),
            "type 'SEMVER' is not ECOSYSTEM",
        ),
        (
            record(
                affected=[
                    package(
                        "lib",
                        ranges=[{"type": "GIT", "repo": "r", "events": [{"introduced": "0"}]}],
                    )
                ]
            ),
            "GIT ranges name commits, and no versions are listed",
        ),
        (record(affected=[package("not a name!", versions=["1"])]), "is not a valid project name"),
        (record(affected=[package("a" * 256, versions=["1"])]), "longer than 255"),
        (record(affected=[{"package": {"ecosystem": "PyPI"}}]), "package has no name"),
        (record(affected=[package("lib", versions="1.0")]), "ranges and versions must be lists"),
        (record(affected=[package("lib", versions=[1.1])]), "version 1.1 is not a string"),
        (record(aliases="CVE-1"), "'aliases' must be a list"),
        (record(aliases=[f"CVE-2099-{n}" for n in range(MAX_ALIASES + 1)]), "at most 100 ids"),
        # What a database or a JSON reader would fail on, refused here.
        (record(summary="a\x00b"), "NUL character"),
        (record(summary="\ud800"), "not Unicode"),
        (record(database_specific={"score": float("nan")}), "nan is not a JSON number"),
        (record(database_specific={"blob": b"bytes"}), "type bytes is not JSON"),
        (record(details=nested(70)), "nested more than 64 levels"),
    ],
)
def test_refused(given: object, problem: str) -> None:
    with pytest.raises(RecordRejected, match=re.escape(problem)):
        read_record(given)


def test_a_refusal_names_the_record() -> None:
    with pytest.raises(RecordRejected, match=r"^PYSEC-2099-1: 'modified' is missing$"):
        read_record(record(modified=None))


def test_invalid_aliases_are_dropped_not_fatal() -> None:
    advisory = read_record(record(aliases=["CVE-2099-1", "<b>x</b>", 7]))
    assert advisory.aliases == ("CVE-2099-1",)
