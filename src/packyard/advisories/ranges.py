"""Which versions of a project an OSV `affected[]` entry covers.

The OSV schema's evaluation (ossf.github.io/osv-schema, "Evaluation"): a
version is affected when it is listed in `versions`, or when it falls in one
of the `ECOSYSTEM` ranges. A range is a sequence of events sorted by version;
`introduced` opens an affected interval (`"0"` opens it at the very start),
`fixed` closes it before the version it names, `last_affected` after it.

Versions compare as PEP 440 versions (`packaging.version`): `1.0` is `1.0.0`,
and pre-releases sort before their release. A listed version that is not
PEP 440 (the real data has over a hundred, like `0.9.8-dev`) is matched as
text, and so is a queried version that is not PEP 440: it is affected only
when it is listed verbatim.

`introduced: "0"` sorts before every version, pre-releases of 0 included
(`0.0.0b0`, which PEP 440 puts before `0`). `limit` events bound the range
from above (the schema's `BeforeLimits`: a version is in the range only if it
is below some limit; a limit containing `*` is no bound).

`GIT` ranges name commits, not releases; for PyPI records the versions they
cover are enumerated in `versions` (osv.dev does that), so they are passed
over; an entry with GIT ranges and no versions says nothing usable and is
named in `skipped`. Any other type (`SEMVER`, unknown ones) cannot be read as
PEP 440, nor can an ECOSYSTEM range whose event is not PEP 440 (the real data
has `fixed: 2019-09-12`) or not a string (YAML reads an unquoted `1.10` as
the number 1.1): such a range is skipped and named in `skipped`, for the
import to report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from packaging.version import InvalidVersion, Version

INTRODUCED = "introduced"
FIXED = "fixed"
LAST_AFFECTED = "last_affected"
LIMIT = "limit"
EVENT_KINDS = (INTRODUCED, FIXED, LAST_AFFECTED, LIMIT)
# The lowest PEP 440 version: below `0` come only its pre- and dev-releases,
# and `0.dev0` is the first of them. `introduced: "0"` starts here.
_ZERO = Version("0.dev0")
PARSED_VERSIONS = 262_144  # distinct version texts remembered: a few MB


@lru_cache(maxsize=PARSED_VERSIONS)
def parse_version(text: str) -> Version | None:
    """`text` as a PEP 440 version, or None. Remembered: the same versions are
    listed by many records (Django's by over a hundred) and asked by every
    page, and parsing is most of what loading the records costs."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


class InvalidRange(ValueError):
    """A range that cannot be evaluated; the message says which event and why."""


@dataclass(frozen=True, slots=True)
class Interval:
    """`start <= version` and `version < end` (`<=` when `end_inclusive`);
    `end` None is unbounded."""

    start: Version
    end: Version | None
    end_inclusive: bool

    def contains(self, version: Version) -> bool:
        if version < self.start:
            return False
        if self.end is None:
            return True
        return version <= self.end if self.end_inclusive else version < self.end

    def describe(self) -> str:
        """`>=1.0, <1.2`, the way a person reads a range."""
        lower = "" if self.start == _ZERO else f">={self.start}"
        upper = "" if self.end is None else f"{'<=' if self.end_inclusive else '<'}{self.end}"
        return ", ".join(part for part in (lower, upper) if part) or "every version"


@dataclass(frozen=True, slots=True)
class AffectedVersions:
    """The versions of one project an advisory covers: intervals and a list."""

    intervals: tuple[Interval, ...]
    listed: frozenset[Version]
    listed_text: frozenset[str]  # the listed versions that are not PEP 440
    skipped: tuple[str, ...] = ()  # ranges that could not be read, and why

    @property
    def empty(self) -> bool:
        return not (self.intervals or self.listed or self.listed_text)

    def affects(self, version: str) -> bool:
        """Whether `version` (as a file or a request names it) is affected."""
        parsed = parse_version(version)
        if parsed is None:
            return version in self.listed_text
        return parsed in self.listed or any(i.contains(parsed) for i in self.intervals)

    def fixed_versions(self) -> tuple[str, ...]:
        """The versions that end an interval by a fix, in order (for people to read)."""
        return tuple(
            str(i.end) for i in self.intervals if i.end is not None and not i.end_inclusive
        )


def affected_versions(
    ranges: Sequence[Mapping[str, object]], versions: Iterable[str]
) -> AffectedVersions:
    """Evaluate the `ranges` and `versions` of one `affected[]` entry.

    Never raises: what cannot be evaluated is named in `skipped`.
    """
    intervals: list[Interval] = []
    skipped: list[str] = []
    git_ranges = 0
    for number, entry in enumerate(ranges):
        kind = entry.get("type")
        if kind == "ECOSYSTEM":
            try:
                intervals.extend(_intervals(number, entry.get("events")))
            except InvalidRange as exc:
                skipped.append(f"{exc}, skipped")
        elif kind == "GIT":
            git_ranges += 1
        else:
            skipped.append(f"range {number}: type {kind!r} is not ECOSYSTEM, skipped")
    listed: set[Version] = set()
    listed_text: set[str] = set()
    for version in versions:
        parsed = parse_version(version)
        if parsed is None:
            listed_text.add(version)
        else:
            listed.add(parsed)
    if git_ranges and not (intervals or listed or listed_text):
        skipped.append("GIT ranges name commits, and no versions are listed")
    return AffectedVersions(
        tuple(intervals), frozenset(listed), frozenset(listed_text), tuple(skipped)
    )


def _intervals(number: int, events: object) -> list[Interval]:
    """The affected intervals one range's events describe, in version order."""
    if not isinstance(events, list) or not events:
        raise InvalidRange(f"range {number}: 'events' must be a non-empty list")
    read = [_event(number, event) for event in events]
    if any(version is None for _, version in read):  # a limit "*": no limit at all
        read = [(kind, version) for kind, version in read if kind != LIMIT]
    parsed = sorted(
        cast(list[tuple[str, Version]], read),
        # At one version, "introduced" comes first: introduced 1.0 + fixed 1.0 is empty.
        key=lambda item: (item[1], item[0] != INTRODUCED),
    )
    intervals: list[Interval] = []
    start: Version | None = None
    for kind, version in parsed:
        if kind == INTRODUCED:
            start = version if start is None else start
        elif kind == LIMIT:
            continue  # applied below, to the whole range
        elif start is not None:
            intervals.append(Interval(start, version, end_inclusive=kind == LAST_AFFECTED))
            start = None
    if start is not None:
        intervals.append(Interval(start, None, end_inclusive=False))
    limits = [version for kind, version in parsed if kind == LIMIT]
    return _below(max(limits), intervals) if limits else intervals


def _below(limit: Version, intervals: list[Interval]) -> list[Interval]:
    """`intervals` cut at `limit` (excluded): the schema's `BeforeLimits`, where
    a version below any of the limits passes, so the highest one bounds."""
    cut = []
    for interval in intervals:
        if interval.start >= limit:
            continue
        if interval.end is None or interval.end >= limit:
            interval = Interval(interval.start, limit, end_inclusive=False)
        cut.append(interval)
    return cut


def _event(number: int, event: object) -> tuple[str, Version | None]:
    """One event's kind and version; None for a limit of `*` (infinity)."""
    if not isinstance(event, dict) or len(event) != 1:
        raise InvalidRange(f"range {number}: an event must have exactly one key")
    ((kind, value),) = event.items()
    if kind not in EVENT_KINDS:
        raise InvalidRange(f"range {number}: unknown event {kind!r}")
    # An int is what it says (YAML's `introduced: 0`); a float is not (`1.10` reads as 1.1).
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidRange(f"range {number}: {kind} {value!r} is not a version string")
    text = str(value)
    if kind == INTRODUCED and text == "0":
        return kind, _ZERO
    if kind == LIMIT and "*" in text:
        return kind, None
    parsed = parse_version(text)
    if parsed is None:
        raise InvalidRange(f"range {number}: {kind} {text!r} is not a PEP 440 version")
    return kind, parsed
