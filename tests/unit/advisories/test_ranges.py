"""Range evaluation: the real data's tricky cases, then what the schema allows and
the data does not show (several ranges or entries, limits, other types)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from packyard.advisories.ranges import affected_versions
from packyard.advisories.records import RecordRejected, read_record
from tests.unit.advisories.conftest import raw, snapshot_record

# (file in the snapshot, project, version, affected?)
REAL_CASES = [
    # Listed versions outside the ranges: affected is the union of both.
    ("gevent/PYSEC-2023-177.yaml", "gevent", "23.9.0", True),  # fixed 23.9.0, yet listed
    ("gevent/PYSEC-2023-177.yaml", "gevent", "23.9.0.post1", True),
    ("gevent/PYSEC-2023-177.yaml", "gevent", "23.9.1", False),
    ("wagtail/PYSEC-2021-114.yaml", "wagtail", "2.11.6", True),  # listed; ranges overlap
    ("wagtail/PYSEC-2021-114.yaml", "wagtail", "2.11.7", False),
    ("wagtail/PYSEC-2021-114.yaml", "wagtail", "2.12.3", True),
    ("wagtail/PYSEC-2021-114.yaml", "wagtail", "2.12.4", False),
    ("pyspark/PYSEC-2022-236.yaml", "pyspark", "3.1.2", True),  # events out of order
    ("pyspark/PYSEC-2022-236.yaml", "pyspark", "3.1.3", False),
    ("pyspark/PYSEC-2022-236.yaml", "pyspark", "3.2.1", True),
    ("pyspark/PYSEC-2022-236.yaml", "pyspark", "3.2.2", False),
    # Listed versions that are not PEP 440: matched as text, exactly.
    ("buildbot/PYSEC-2019-6.yaml", "buildbot", "0.7.10p1", True),
    ("buildbot/PYSEC-2019-6.yaml", "buildbot", "0.7.10p9", False),
    ("jw.util/PYSEC-2020-341.yaml", "jw-util", "-class.-jw.util.version.Version-", True),
    # A listed `0.8.0-alpha2` is PEP 440's 0.8.0a2, however it is spelled.
    ("py/PYSEC-2022-42969.yaml", "py", "0.8.0a2", True),
    ("py/PYSEC-2022-42969.yaml", "py", "0.8.0-alpha2", True),
    # last_affected: that version is affected, the next is not.
    ("py/PYSEC-2022-42969.yaml", "py", "1.11.0", True),
    ("py/PYSEC-2022-42969.yaml", "py", "1.11.1", False),
    ("py/PYSEC-2022-42969.yaml", "py", "1.12", False),
    # introduced "0": before every version, pre-releases of 0 included (0.0.0b2
    # is not listed; PEP 440 sorts it before "0").
    ("vantage6/PYSEC-2023-196.yaml", "vantage6", "0.0.0b2", True),
    ("vantage6/PYSEC-2023-196.yaml", "vantage6", "0.dev0", True),
    ("vantage6/PYSEC-2023-196.yaml", "vantage6", "4.0.1", True),
    ("vantage6/PYSEC-2023-196.yaml", "vantage6", "4.0.2", False),
    # Pre-releases: before their release (3.2a2 < 3.2), a pre-release fix ends a range.
    ("django/PYSEC-2023-61.yaml", "django", "3.2a1", True),  # listed
    ("django/PYSEC-2023-61.yaml", "django", "3.2a2", False),  # not listed, below >=3.2
    ("django/PYSEC-2023-61.yaml", "django", "3.2.18", True),
    ("django/PYSEC-2023-61.yaml", "django", "3.2.19", False),
    ("django/PYSEC-2023-61.yaml", "django", "4.1.8", True),  # the second range
    ("django/PYSEC-2023-61.yaml", "django", "4.2", True),  # the third
    ("django/PYSEC-2023-61.yaml", "django", "4.2.1", False),
    ("apache-airflow/PYSEC-2019-214.yaml", "apache-airflow", "1.10.3a1", True),
    ("apache-airflow/PYSEC-2019-214.yaml", "apache-airflow", "1.10.3b1", False),
    ("apache-airflow/PYSEC-2019-214.yaml", "apache-airflow", "1.10.3", False),
    ("vantage6/PYSEC-2023-53.yaml", "vantage6", "3.8.0rc2", True),
    ("vantage6/PYSEC-2023-53.yaml", "vantage6", "3.8.0rc3", False),
    ("vantage6/PYSEC-2023-53.yaml", "vantage6", "3.6.1", False),
    ("vantage6/PYSEC-2023-53.yaml", "vantage6", "3.7.0", True),
    # A GIT range beside the ECOSYSTEM one and the versions: passed over.
    ("aiohttp/PYSEC-2021-76.yaml", "aiohttp", "3.7.3", True),
    ("aiohttp/PYSEC-2021-76.yaml", "aiohttp", "3.7.4", False),
    ("aiohttp/PYSEC-2021-76.yaml", "aiohttp", "3.7.4.post0", False),
    # Versions only, no ranges: 0.5 and 0.5.0 are one version.
    ("gratient/PYSEC-2024-1.yaml", "gratient", "0.5", True),
    ("gratient/PYSEC-2024-1.yaml", "gratient", "0.5.0", True),
    ("gratient/PYSEC-2024-1.yaml", "gratient", "0.4", False),
    ("requests/PYSEC-2018-28.yaml", "requests", "2.19.0", True),
    ("requests/PYSEC-2018-28.yaml", "requests", "2.20.0", False),
    # A version no PEP 440 parser reads is affected only when listed verbatim.
    ("requests/PYSEC-2018-28.yaml", "requests", "not a version", False),
]


@pytest.mark.parametrize(("origin", "name", "version", "affected"), REAL_CASES)
def test_real_records(origin: str, name: str, version: str, affected: bool) -> None:
    assert snapshot_record(origin).affects(name, version) is affected


def test_names_are_normalised_and_other_projects_are_not_affected() -> None:
    advisory = snapshot_record("jw.util/PYSEC-2020-341.yaml")
    assert list(advisory.affected) == ["jw-util"]
    assert not advisory.affects("jw.util", "1.0")  # callers pass normalised names
    assert not advisory.affects("requests", "1.0")


@pytest.mark.parametrize(
    ("origin", "problem"),
    [
        ("binderhub/PYSEC-2021-371.yaml", "fixed '0.2.0-n653' is not a PEP 440 version"),
        ("steam/PYSEC-2019-125.yaml", "fixed '2019-09-12' is not a PEP 440 version"),
    ],
)
def test_the_two_records_with_a_fixed_event_that_is_not_pep_440_are_refused(
    origin: str, problem: str
) -> None:
    """Reading `fixed: 2019-09-12` as "no fix" would call every version affected;
    dropping the event would call none: the record is refused, with the reason."""
    with pytest.raises(RecordRejected, match=problem):
        read_record(raw(origin))


def test_describe_and_fixed_versions_read_as_people_write_them() -> None:
    (entry,) = snapshot_record("django/PYSEC-2023-61.yaml").affected["django"]
    assert [i.describe() for i in entry.intervals] == [
        ">=3.2, <3.2.19",
        ">=4.0, <4.1.9",
        ">=4.2, <4.2.1",
    ]
    assert entry.fixed_versions() == ("3.2.19", "4.1.9", "4.2.1")
    (last,) = snapshot_record("py/PYSEC-2022-42969.yaml").affected["py"]
    assert [i.describe() for i in last.intervals] == ["<=1.11.0"]
    assert last.fixed_versions() == ()
    assert affected_versions([ecosystem({"introduced": "0"})], []).intervals[0].describe() == (
        "every version"
    )


def ecosystem(*events: Mapping[str, object]) -> dict[str, object]:
    return {"type": "ECOSYSTEM", "events": list(events)}


def affects(
    ranges: Sequence[Mapping[str, object]], version: str, listed: Sequence[str] = ()
) -> bool:
    return affected_versions(ranges, listed).affects(version)


@pytest.mark.parametrize(
    ("ranges", "version", "expected"),
    [
        # Several ECOSYSTEM ranges in one entry: any of them.
        (
            [ecosystem({"introduced": "1.0"}, {"fixed": "1.1"}), ecosystem({"introduced": "2.0"})],
            "2.5",
            True,
        ),
        (
            [ecosystem({"introduced": "1.0"}, {"fixed": "1.1"}), ecosystem({"introduced": "2.0"})],
            "1.5",
            False,
        ),
        # Introduced and fixed at one version: nothing.
        ([ecosystem({"introduced": "1.0"}, {"fixed": "1.0"})], "1.0", False),
        # Events in any order are sorted first.
        ([ecosystem({"fixed": "2.0"}, {"introduced": "1.0"})], "1.5", True),
        # limit: below the highest limit only ("*" is no limit at all).
        ([ecosystem({"introduced": "0"}, {"limit": "2.0"})], "1.9", True),
        ([ecosystem({"introduced": "0"}, {"limit": "2.0"})], "2.0", False),
        ([ecosystem({"introduced": "0"}, {"limit": "2.0"}, {"limit": "3.0"})], "2.5", True),
        ([ecosystem({"introduced": "0"}, {"limit": "*"})], "99", True),
        ([ecosystem({"introduced": "3.0"}, {"limit": "2.0"})], "3.1", False),
        # YAML's unquoted `introduced: 0` is the number 0: the same thing.
        ([ecosystem({"introduced": 0}, {"fixed": "1.0"})], "0.5", True),
        # A GIT range beside listed versions says nothing more.
        (
            [{"type": "GIT", "repo": "x", "events": [{"introduced": "0"}, {"fixed": "abc"}]}],
            "1.0",
            False,
        ),
    ],
)
def test_what_the_schema_allows(
    ranges: list[Mapping[str, object]], version: str, expected: bool
) -> None:
    assert affects(ranges, version) is expected


@pytest.mark.parametrize(
    ("ranges", "listed", "note"),
    [
        (
            [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
            (),
            "type 'SEMVER' is not ECOSYSTEM",
        ),
        ([{"type": "GIT", "repo": "x", "events": [{"introduced": "0"}]}], (), "GIT ranges"),
        ([ecosystem({"introduced": "0"}, {"fixed": 1.1})], (), "fixed 1.1 is not a version string"),
        ([ecosystem({"introduced": "0", "fixed": "1"})], (), "exactly one key"),
        ([ecosystem({"introduced": "0"}, {"patched": "1"})], (), "unknown event 'patched'"),
        ([{"type": "ECOSYSTEM", "events": []}], (), "non-empty list"),
    ],
)
def test_what_cannot_be_evaluated_is_named(
    ranges: list[Mapping[str, object]], listed: Sequence[str], note: str
) -> None:
    evaluated = affected_versions(ranges, listed)
    assert evaluated.empty
    assert note in evaluated.skipped[0]


def test_a_skipped_range_beside_a_good_one_keeps_the_good_one() -> None:
    evaluated = affected_versions(
        [{"type": "SEMVER", "events": [{"introduced": "0"}]}, ecosystem({"introduced": "1.0"})],
        ["0.5"],
    )
    assert evaluated.affects("1.2")
    assert evaluated.affects("0.5")
    assert not evaluated.affects("0.6")
    assert evaluated.skipped == ("range 0: type 'SEMVER' is not ECOSYSTEM, skipped",)
