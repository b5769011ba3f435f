"""Known vulnerabilities as a project page shows them: a badge, a list, marks.

Everything here is computed from the process's `Advisories` (the records in
force, `advisories/index.py`) and the page's releases; nothing is read from
the database. What depends only on the records is worked out once per import
(`DescribedProject`); the accepted risks are applied per page. Values stay
plain text (ids, summaries, version ranges): the templates escape them, and
the only link an entry makes is to this server's own `/advisories/{id}` page.

A record's affected versions are described the way a person reads them: its
ranges (`Interval.describe()`, `>=2.0, <2.10.1`), then the versions it lists
outside every range. A list of dozens of versions is shortened here (the
record's own page shows it whole).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from packaging.version import InvalidVersion, Version

from packyard.advisories.index import Advisories
from packyard.advisories.ranges import AffectedVersions
from packyard.advisories.records import OsvRecord

SHOWN_VERSIONS = 6  # listed versions shown before the rest are counted
SHOWN_RANGES = 6  # ranges shown before the rest are counted
SUMMARY_CHARS = 200  # a summary made from `details` is cut here


@dataclass(frozen=True, slots=True)
class AdvisoryRow:
    """One record as a project page lists it, for one project."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[str, ...]  # ranges and listed versions, for people to read
    fixed: tuple[str, ...]
    malicious: bool
    accepted: str | None  # why an admin accepted the risk; None: not accepted


@dataclass(frozen=True, slots=True)
class ReleaseMark:
    """What the release history says of one version."""

    count: int
    malicious: bool


@dataclass(frozen=True, slots=True)
class ProjectAdvisories:
    """The records of one project: those affecting the release shown, the
    others, and a mark for each affected version of the history."""

    affecting: tuple[AdvisoryRow, ...]
    others: tuple[AdvisoryRow, ...]
    marks: Mapping[str, ReleaseMark]

    @property
    def malicious(self) -> bool:
        return any(row.malicious for row in self.affecting)

    @property
    def any(self) -> bool:
        return bool(self.affecting or self.others)


NO_PROJECT_ADVISORIES = ProjectAdvisories((), (), {})


class DescribedProject:
    """One project's records in force, described once per import: the rows
    (accepted risks left out: those change at any write) and, for one list of
    versions at a time, which rows affect which version.

    A project like Django has over a hundred records and hundreds of
    releases: asking each record of each version costs a page ~0.4 s, so the
    versions are sorted once and each range is found in them by bisection.
    """

    def __init__(self, name: str, records: Iterable[OsvRecord]) -> None:
        self.name = name
        self._records = _ordered(records)
        self.rows = tuple(advisory_row(record, name) for record in self._records)
        self._hits: tuple[tuple[str, ...], Mapping[str, tuple[int, ...]]] = ((), {})

    def knows(self, versions: tuple[str, ...]) -> bool:
        """Whether `hits(versions)` is already worked out."""
        return self._hits[0] == versions

    def hits(self, versions: tuple[str, ...]) -> Mapping[str, tuple[int, ...]]:
        """The indices in `rows` of the records affecting each of `versions`
        (versions no record affects are left out). Remembers the last list."""
        known, found = self._hits
        if known == versions:
            return found
        candidates = Candidates(versions)
        by_version: dict[str, list[int]] = {}
        for number, record in enumerate(self._records):
            for version in candidates.affected(record.affected.get(self.name, ())):
                by_version.setdefault(version, []).append(number)
        found = {version: tuple(numbers) for version, numbers in by_version.items()}
        self._hits = (versions, found)
        return found


class Candidates:
    """Versions to test against many records: parsed and sorted once.

    `affected(entries)` answers as `AffectedVersions.affects` would for each
    version (listed, or in a range, by PEP 440; a version that is not PEP 440
    only when listed verbatim), for all of them at once.
    """

    def __init__(self, versions: Iterable[str]) -> None:
        parsed: list[tuple[Version, str]] = []
        self.texts: list[str] = []  # not PEP 440
        for text in versions:
            try:
                parsed.append((Version(text), text))
            except InvalidVersion:
                self.texts.append(text)
        parsed.sort()
        self.parsed = parsed
        self.keys = [version for version, _ in parsed]
        self.by_version: dict[Version, list[str]] = {}
        for version, text in parsed:
            self.by_version.setdefault(version, []).append(text)

    def affected(self, entries: Iterable[AffectedVersions]) -> set[str]:
        found: set[str] = set()
        for entry in entries:
            found.update(text for text in self.texts if text in entry.listed_text)
            for version in entry.listed:
                found.update(self.by_version.get(version, ()))
            for interval in entry.intervals:
                low = bisect_left(self.keys, interval.start)
                if interval.end is None:
                    high = len(self.keys)
                elif interval.end_inclusive:
                    high = bisect_right(self.keys, interval.end)
                else:
                    high = bisect_left(self.keys, interval.end)
                found.update(text for _, text in self.parsed[low:high])
        return found


def project_advisories(
    state: Advisories, described: DescribedProject, versions: tuple[str, ...], shown: str
) -> ProjectAdvisories:
    """The advisories of `described` for its page at version `shown` (one of
    `versions`, the release history), with a mark for each affected version
    and the risks `state` says an admin accepted."""
    rows = [_with_acceptance(state, row, described.name) for row in described.rows]
    hits = described.hits(versions)
    affecting = set(hits.get(shown, ()))
    marks = {
        version: ReleaseMark(len(numbers), any(rows[n].malicious for n in numbers))
        for version, numbers in hits.items()
    }
    return ProjectAdvisories(
        affecting=tuple(row for n, row in enumerate(rows) if n in affecting),
        others=tuple(row for n, row in enumerate(rows) if n not in affecting),
        marks=marks,
    )


def advisory_row(record: OsvRecord, name: str) -> AdvisoryRow:
    """`record` as the page of project `name` lists it (no risk accepted)."""
    entries = record.affected.get(name, ())
    return AdvisoryRow(
        id=record.id,
        aliases=record.aliases,
        summary=summary_of(record),
        affected=describe_affected(entries, shorten=True),
        fixed=shorten(fixed_versions(entries), SHOWN_VERSIONS),
        malicious=record.malicious,
        accepted=None,
    )


def _with_acceptance(state: Advisories, row: AdvisoryRow, name: str) -> AdvisoryRow:
    reason = state.accepted_reason(row.id, name)
    return row if reason is None else replace(row, accepted=reason)


def summary_of(record: OsvRecord) -> str:
    """The record's summary; else the first paragraph of its details, cut short
    (PYSEC records have no summary)."""
    if record.summary and record.summary.strip():
        return record.summary.strip()
    details = record.data.get("details")
    if not isinstance(details, str) or not details.strip():
        return ""
    first = " ".join(details.strip().split("\n\n", 1)[0].split())
    return first if len(first) <= SUMMARY_CHARS else first[: SUMMARY_CHARS - 1].rstrip() + "…"


def describe_affected(
    entries: Sequence[AffectedVersions], *, shorten: bool = False
) -> tuple[str, ...]:
    """The ranges of `entries`, then the versions they list outside every range.

    With `shorten`, at most `SHOWN_RANGES` ranges and `SHOWN_VERSIONS` listed
    versions are named and the rest are counted. No range and no listed
    version gives ("no version",): a record that affects nothing.
    """
    intervals = sorted((i for entry in entries for i in entry.intervals), key=lambda i: i.start)
    ranges: Sequence[str] = list(dict.fromkeys(interval.describe() for interval in intervals))
    outside = sorted({v for entry in entries for v in entry.listed if not _in_ranges(v, entries)})
    texts = sorted({text for entry in entries for text in entry.listed_text})
    listed: Sequence[str] = [str(version) for version in outside] + texts
    if shorten:
        ranges = _cut(ranges, SHOWN_RANGES, "range")
        listed = _cut(listed, SHOWN_VERSIONS, "version")
    described = [*ranges, ", ".join(listed)] if listed else list(ranges)
    return tuple(described) or ("no version",)


def fixed_versions(entries: Iterable[AffectedVersions]) -> tuple[str, ...]:
    """Every version a fix ends a range at, in version order, once each."""
    found = {version for entry in entries for version in entry.fixed_versions()}
    return tuple(sorted(found, key=Version))  # a fix's version is PEP 440 (ranges.py)


def shorten(items: Sequence[str], shown: int) -> tuple[str, ...]:
    """`items`, the first `shown` of them and a count of the rest when longer."""
    return tuple(_cut(items, shown, "version"))


def _cut(items: Sequence[str], shown: int, noun: str) -> Sequence[str]:
    if len(items) <= shown:
        return items
    rest = len(items) - shown
    return [*items[:shown], f"and {rest} more {noun}{'' if rest == 1 else 's'}"]


def _in_ranges(version: Version, entries: Iterable[AffectedVersions]) -> bool:
    return any(i.contains(version) for entry in entries for i in entry.intervals)


def _ordered(records: Iterable[OsvRecord]) -> list[OsvRecord]:
    """Malicious records first, then the newest published first, then by id."""
    return sorted(
        records,
        key=lambda r: (
            not r.malicious,
            -(r.published or r.modified).timestamp(),
            r.id,
        ),
    )
