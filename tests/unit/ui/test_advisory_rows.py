"""How a project page describes a record's versions (`browser/advisories.py`), over
real records of the PyPA snapshot, and the safe rendering of `details`."""

from __future__ import annotations

import pytest

from packyard.advisories.index import Advisories
from packyard.advisories.records import read_record
from packyard.advisories.sources import read_source
from packyard.browser.advisories import (
    SHOWN_RANGES,
    SHOWN_VERSIONS,
    Candidates,
    DescribedProject,
    describe_affected,
    fixed_versions,
    project_advisories,
    summary_of,
)
from packyard.browser.advisory_page import safe_details
from tests.unit.advisories.conftest import SNAPSHOT, snapshot_record

# Projects whose records use every kind of range the data has: many ranges
# (salt), `last_affected` and listed versions outside the ranges (paramiko),
# versions that are not PEP 440 (rope, limnoria), pre-releases (django).
PROJECTS = ("django", "salt", "paramiko", "rope", "limnoria", "jinja2")


def test_ranges_are_described_as_people_read_them() -> None:
    entries = snapshot_record("jinja2/PYSEC-2019-217.yaml").affected["jinja2"]
    # Every listed version lies in the range: only the range is named.
    assert describe_affected(entries) == ("<2.10.1",)
    assert fixed_versions(entries) == ("2.10.1",)


def test_many_ranges_are_shortened_on_project_pages_only() -> None:
    entries = snapshot_record("salt/PYSEC-2021-55.yaml").affected["salt"]
    full = describe_affected(entries)
    assert len(full) == 15
    assert full[:2] == ("<2015.8.10", ">=2015.8.11, <2015.8.13")
    short = describe_affected(entries, shorten=True)
    assert short == (*full[:SHOWN_RANGES], f"and {15 - SHOWN_RANGES} more ranges")


def test_versions_listed_outside_the_ranges_are_named_after_them() -> None:
    # rope lists 21 versions that are not PEP 440 (`0.3m1`): matched as text.
    entries = snapshot_record("rope/PYSEC-2018-100.yaml").affected["rope"]
    full = describe_affected(entries)
    assert full[0] == "<0.11.0"
    assert full[1].startswith("0.3m1, 0.3m2")
    assert full[1].count(", ") == 20
    short = describe_affected(entries, shorten=True)
    assert short[1].endswith(f"and {21 - SHOWN_VERSIONS} more versions")
    assert short[1].count(", ") == SHOWN_VERSIONS


def test_a_record_without_versions_affects_no_version() -> None:
    withdrawn = snapshot_record("loguru/PYSEC-2022-15.yaml")
    assert describe_affected(withdrawn.affected["loguru"]) == ("no version",)


def test_a_summary_stands_in_from_the_details() -> None:
    record = snapshot_record("jinja2/PYSEC-2014-8.yaml")
    assert record.summary is None
    assert summary_of(record).startswith("The default configuration for bccache")
    long = read_record(
        {
            "id": "TEST-1",
            "modified": "2024-01-01T00:00:00Z",
            "details": "word " * 500 + "\n\nsecond paragraph",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]}],
        }
    )
    assert len(summary_of(long)) == 200
    assert summary_of(long).endswith("…")


def test_rows_split_by_the_release_shown_and_marks_per_version() -> None:
    records = tuple(
        snapshot_record(f"jinja2/{name}.yaml")
        for name in ("PYSEC-2014-8", "PYSEC-2019-217", "PYSEC-2021-66")
    )
    state = Advisories(
        generation=1,
        by_name={"jinja2": records},
        accepted={("PYSEC-2021-66", "*"): "reviewed"},
    )
    described = DescribedProject("jinja2", records)
    shown = project_advisories(state, described, ("3.1.4", "2.10", "2.7"), "2.10")
    assert [row.id for row in shown.affecting] == ["PYSEC-2021-66", "PYSEC-2019-217"]
    assert [row.id for row in shown.others] == ["PYSEC-2014-8"]
    assert shown.affecting[0].accepted == "reviewed"  # accepted for every project
    assert shown.affecting[1].accepted is None
    assert set(shown.marks) == {"2.10", "2.7"}
    assert shown.marks["2.7"].count == 3
    assert not shown.malicious


def test_malicious_records_come_first() -> None:
    benign = snapshot_record("jinja2/PYSEC-2021-66.yaml")
    malicious = read_record(
        {
            "id": "MAL-2022-1",
            "modified": "2022-01-01T00:00:00Z",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "jinja2"}, "versions": ["2.10"]}
            ],
        }
    )
    state = Advisories(generation=1, by_name={"jinja2": (benign, malicious)})
    described = DescribedProject("jinja2", state.for_project("jinja2"))
    shown = project_advisories(state, described, ("2.10",), "2.10")
    assert [row.id for row in shown.affecting] == ["MAL-2022-1", "PYSEC-2021-66"]
    assert shown.malicious
    assert shown.marks["2.10"].malicious


@pytest.mark.parametrize("project", PROJECTS)
def test_all_versions_at_once_agree_with_each_version_alone(project: str) -> None:
    """`Candidates` (bisection over sorted versions) answers as `affects` does."""
    records = [entry.record for entry in read_source(SNAPSHOT / project) if entry.record]
    versions = {"0", "0.0.1", "not-pep-440", "99999"}
    for record in records:
        for entry in record.affected.get(project, ()):
            versions |= {str(v) for v in sorted(entry.listed)[::5]} | set(entry.listed_text)
            for interval in entry.intervals:
                for bound in (interval.start, interval.end):
                    if bound is not None:
                        versions |= {str(bound), f"{bound}.post1", f"{bound}rc1", f"{bound}.0"}
    candidates = Candidates(versions)
    for record in records:
        entries = record.affected.get(project, ())
        expected = {version for version in versions if record.affects(project, version)}
        assert candidates.affected(entries) == expected, record.id


@pytest.mark.parametrize(
    ("markdown", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ("[x](javascript:alert(1))", "javascript:"),
        ("[x](JaVaScRiPt:alert(1))", "alert(1))"),
        ("[x](data:text/html,<b>x</b>)", "data:"),
        ("[x](/admin/users)", "/admin/"),
        ("[x](//evil.example/)", "evil.example"),
        ("![x](https://beacon.example/p.png)", "beacon.example"),
        ('<img src="https://beacon.example/p.png">', "beacon.example"),
        ('<a href="https://ok.example" onmouseover="x()">a</a>', "onmouseover"),
        ('<iframe src="https://evil.example/"></iframe>', "<iframe"),
        ('<form action="https://evil.example/"><input name=x></form>', "<input"),
        ('<p style="background:url(https://beacon.example/)">x</p>', "beacon.example"),
        ("[x](mailto:a@example.com)", "mailto:"),
    ],
)
def test_details_keep_nothing_that_runs_loads_or_leads_inside(
    markdown: str, forbidden: str
) -> None:
    html = safe_details(f"Before {markdown} after")
    assert forbidden.lower() not in html.lower()
    assert "Before" in html


def test_details_keep_markdown_and_safe_links() -> None:
    html = safe_details("# Title\n\n**bold** `code` [fix](https://ok.example/fix) [top](#title)")
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert '<a href="https://ok.example/fix" rel="noopener nofollow noreferrer">fix</a>' in html
    assert 'href="#user-content-title"' in html
