"""The rule "a requirement admits only affected versions": pins, ranges, open
specifiers with a fix known, markers and extras, pre-releases, accepted risks,
then the real snapshot's django, requests and jinja2."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from packaging.requirements import Requirement

from packyard.advisories.findings import (
    MAX_REQUIREMENT_LENGTH,
    Finding,
    check_requirement,
    read_requirements,
)
from packyard.advisories.index import Advisories
from packyard.advisories.records import OsvRecord, read_record
from tests.unit.advisories.conftest import SNAPSHOT, snapshot_record


def record(
    advisory_id: str,
    *events: Mapping[str, str],
    name: str = "demo",
    versions: Iterable[str] = (),
) -> OsvRecord:
    """A record of `name` with one ECOSYSTEM range of `events` and listed `versions`."""
    ranges = [{"type": "ECOSYSTEM", "events": list(events)}] if events else []
    return read_record(
        {
            "id": advisory_id,
            "modified": "2024-01-01T00:00:00Z",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": name},
                    "ranges": ranges,
                    "versions": list(versions),
                }
            ],
        }
    )


def advisories(*records: OsvRecord, accepted: Mapping[tuple[str, str], str] = {}) -> Advisories:
    by_name: dict[str, list[OsvRecord]] = {}
    for item in records:
        for name in item.affected:
            by_name.setdefault(name, []).append(item)
    return Advisories(1, {n: tuple(r) for n, r in by_name.items()}, dict(accepted))


# demo: 1.0 up to (not with) 1.2 affected by A; 1.1.x also by B; 1.2 fixed.
FIXED_IN_1_2 = record("PYSEC-0000-1", {"introduced": "1.0"}, {"fixed": "1.2"})
ALSO_1_1 = record("PYSEC-0000-2", {"introduced": "1.1"}, {"fixed": "1.1.5"})
DEMO = advisories(FIXED_IN_1_2, ALSO_1_1)


def check(text: str, state: Advisories = DEMO, known: Iterable[str] = ()) -> Finding | None:
    return check_requirement(Requirement(text), state, known)


def ids(text: str, state: Advisories = DEMO, known: Iterable[str] = ()) -> tuple[str, ...]:
    finding = check(text, state, known)
    return finding.advisory_ids if finding is not None else ()


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        # A pin of an affected version, by `==` and by `===`.
        ("demo==1.0", ("PYSEC-0000-1",)),
        ("demo==1.1.2", ("PYSEC-0000-1", "PYSEC-0000-2")),
        ("demo===1.0", ("PYSEC-0000-1",)),
        # A pin of the fix, or of a version before the range.
        ("demo==1.2", ()),
        ("demo==0.9", ()),
        # A range inside the affected one: every version it admits is affected.
        ("demo>=1.0,<1.2", ("PYSEC-0000-1", "PYSEC-0000-2")),
        ("demo~=1.1.0", ("PYSEC-0000-1", "PYSEC-0000-2")),
        ("demo==1.1.*", ("PYSEC-0000-1", "PYSEC-0000-2")),
        # The lower bound a requirement names is a candidate of its own.
        ("demo>=1.1.6,<1.2", ("PYSEC-0000-1",)),
        # Open specifiers, or none: the fix 1.2 (or a later release) is admitted.
        ("demo>=1.0", ()),
        ("demo", ()),
        ("demo>=5", ()),
        # Releases after the last fix, and before the first affected one, exist
        # even when no record names them.
        ("demo!=1.2", ()),
        ("demo>1.0,!=1.2", ()),
        ("demo<1.2", ()),
    ],
)
def test_a_requirement_is_flagged_when_every_version_it_admits_is_affected(
    requirement: str, expected: tuple[str, ...]
) -> None:
    assert ids(requirement) == expected


def test_versions_stored_in_packyard_are_candidates() -> None:
    # Only 1.0 and 1.1 are listed (no range): a requirement between them is
    # flagged, unless packyard stores a release in between that is not listed.
    listed = advisories(record("PYSEC-0000-7", versions=["1.0", "1.1"]))
    assert ids("demo>=1.0,<1.2", listed) == ("PYSEC-0000-7",)
    assert ids("demo>=1.0,<1.2", listed, known=["1.0.1"]) == ()
    # A stored version that is not PEP 440 is no candidate.
    assert ids("demo>=1.0,<1.2", listed, known=["one"]) == ("PYSEC-0000-7",)


def test_an_advisory_without_a_fix_flags_every_requirement() -> None:
    unfixed = advisories(record("PYSEC-0000-3", {"introduced": "0"}, versions=["0.1", "0.2"]))
    assert ids("demo", unfixed) == ("PYSEC-0000-3",)
    assert ids("demo>=0.2", unfixed) == ("PYSEC-0000-3",)
    assert ids("demo>=0.2", unfixed, known=["7.0"]) == ("PYSEC-0000-3",)


@pytest.mark.parametrize(
    "requirement",
    [
        'demo==1.0; python_version < "3"',  # a marker counts whatever the environment
        'demo==1.0; extra == "legacy"',  # so does an extra's requirement
        "demo[speedups]==1.0",  # the dependency's extras do not change its versions
        "DEMO==1.0",
    ],
)
def test_markers_count_and_extras_and_spelling_do_not_matter(requirement: str) -> None:
    finding = check(requirement)
    assert finding is not None
    assert finding.dependency == "demo"
    assert finding.requirement == str(Requirement(requirement))  # kept, marker and all
    assert finding.advisory_ids == ("PYSEC-0000-1",)


def test_pre_releases_are_candidates_only_when_the_specifier_asks_for_them() -> None:
    # Affected from 1.0; the only fix the record names is a pre-release, 2.0rc1.
    state = advisories(record("PYSEC-0000-4", {"introduced": "1.0"}, {"fixed": "2.0rc1"}))
    # PEP 440: `<2.0` admits no pre-release of 2.0; `<2.0.1` admits none at all
    # unless the specifier names one...
    assert ids("demo>=1.0,<2.0", state) == ("PYSEC-0000-4",)
    assert ids("demo>=1.0,<2.0.1", state) == ("PYSEC-0000-4",)
    # ...as this one does: 2.0rc1 is admitted, and it is not affected.
    assert ids("demo>=1.0,<=2.0rc1", state) == ()
    # A final release stored past the fix is a way out.
    assert ids("demo>=1.0,<2.0.1", state, known=["2.0"]) == ()


def test_when_only_pre_releases_match_they_are_candidates() -> None:
    # As pip does: no final release in `>2.9,<3.0.1`, so 3.0b1 is admitted.
    state = advisories(record("PYSEC-0000-8", {"introduced": "0"}, {"fixed": "3.0b1"}))
    assert ids("demo>2.9,<3.0.1", state) == ()
    assert ids("demo>2.9,<3.0", state) == ()  # nothing known at all in there


def test_an_affected_pre_release_is_flagged() -> None:
    state = advisories(record("PYSEC-0000-5", {"introduced": "2.0a1"}, {"fixed": "2.0"}))
    assert ids("demo==2.0b3", state) == ("PYSEC-0000-5",)
    assert ids("demo>=2.0a1,<2.0b5", state) == ("PYSEC-0000-5",)
    # PEP 440: `<2.0` admits no pre-release of 2.0, so this admits nothing known.
    assert ids("demo>=2.0a1,<2.0", state) == ()


def test_a_version_that_is_not_pep440_is_matched_by_arbitrary_equality() -> None:
    state = advisories(record("PYSEC-0000-6", versions=["0.9.8-dev"]))
    assert ids("demo===0.9.8-dev", state) == ("PYSEC-0000-6",)
    assert ids("demo===0.9.9-dev", state) == ()


def test_accepted_risks_are_not_held_against_a_requirement() -> None:
    for_demo = advisories(FIXED_IN_1_2, accepted={("PYSEC-0000-1", "demo"): "we patched it"})
    for_all = advisories(FIXED_IN_1_2, accepted={("PYSEC-0000-1", "*"): "reviewed"})
    elsewhere = advisories(FIXED_IN_1_2, accepted={("PYSEC-0000-1", "other"): "other"})
    assert check("demo==1.0", for_demo) is None
    assert check("demo==1.0", for_all) is None
    assert ids("demo==1.0", elsewhere) == ("PYSEC-0000-1",)
    # One of two records accepted: the other still flags the versions it covers.
    partly = advisories(
        FIXED_IN_1_2, ALSO_1_1, accepted={("PYSEC-0000-1", "demo"): "we patched it"}
    )
    assert ids("demo==1.1.2", partly) == ("PYSEC-0000-2",)
    assert ids("demo==1.0", partly) == ()


def test_no_records_or_a_direct_reference_are_never_flagged() -> None:
    assert check("other==1.0") is None
    assert check("demo @ https://example.invalid/demo-1.0.tar.gz") is None


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("django==3.2.0", True),
        ("django>=3.2,<3.2.5", True),
        ("django>=3.2", False),
        ("django~=3.2.0", False),  # 3.2.25 fixes what the snapshot knows of 3.2
        ("requests==2.19.0", True),
        ("requests<2.20", True),
        ("requests>=2.19", False),
        ("jinja2>=2.10,<2.11", True),
        ("jinja2>=2.10", False),
    ],
)
def test_the_real_snapshot(real: Advisories, requirement: str, expected: bool) -> None:
    assert (check(requirement, real) is not None) == expected


def test_the_real_snapshot_names_the_advisories(real: Advisories) -> None:
    finding = check("django==3.2.0", real)
    assert finding is not None
    assert len(finding.advisory_ids) == 25
    assert {"PYSEC-2021-98", "PYSEC-2024-47"} <= set(finding.advisory_ids)
    assert ids("requests==2.19.0", real) == ("PYSEC-2018-28", "PYSEC-2023-74")
    assert ids("jinja2==2.10", real) == ("PYSEC-2019-217", "PYSEC-2021-66")


@pytest.fixture(scope="module")
def real() -> Advisories:
    """The snapshot's records of django, requests and jinja2 (in force)."""
    records = [
        snapshot_record(str(path.relative_to(SNAPSHOT)))
        for project in ("django", "requests", "jinja2")
        for path in sorted((SNAPSHOT / project).glob("*.yaml"))
    ]
    return advisories(*(r for r in records if r.withdrawn is None))


def test_read_requirements_keeps_each_valid_requirement_once() -> None:
    too_long = "demo>=1.0; " + " or ".join(['python_version == "3.8"'] * 60)
    assert len(too_long) > MAX_REQUIREMENT_LENGTH
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: acme",
            "Version: 1.0",
            "Requires-Dist: Django >=3.2",
            "Requires-Dist: django>=3.2",  # the same, spelt otherwise
            'Requires-Dist: requests; extra == "http"',
            "Requires-Dist: not a requirement !!",
            f"Requires-Dist: {too_long}",
            "",
            "Requires-Dist: in-the-description==1.0",
        ]
    ).encode()
    found = [str(r) for r in read_requirements(metadata)]
    assert found == ["Django>=3.2", 'requests; extra == "http"']
