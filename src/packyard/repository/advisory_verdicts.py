"""What the known vulnerabilities do to one project page, under one policy.

Pure functions of a page, the advisories in force and a policy; the
component that applies them per request is `repository/advisories.py`.

Per file, the advisories affecting its version (the version its filename
carries) are split in two: those an admin accepted for the project (or for
every project) and the rest, which are enforced. The file's action is:

- `deny` if any advisory is a malicious-package record (`MAL-`), whatever
  the policy: such a record is never accepted (an exception cannot lift it);
- else the policy (`warn`, `yank`, `hide`, `deny`) if any advisory is enforced;
- else `accepted` (every advisory accepted): the file is served as it is.

The page keeps every file under `warn` and `accepted`; under `yank` the file
is served yanked (PEP 592) with a reason naming the advisories, unless it is
yanked already (its own reason stays); under `hide` and `deny` it is left out
(`policy.hide_files`, so `_hidden-files` gives the reason). Every affected
version is listed in the page's private `advisories` list (`_advisories` in
JSON): the version, the action, the enforced ids and the accepted ones. Per
version, not per file: every file of a version has the same finding, and a
page like django's (hundreds of affected files, a dozen ids each) would
otherwise carry each list twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from packyard.advisories.index import Advisories
from packyard.advisories.records import MALICIOUS_PREFIX, OsvRecord

# The browser's range evaluation over many versions at once (a pure function of the
# advisories package's types; it belongs there, beside `ranges.py`).
from packyard.browser.advisories import Candidates
from packyard.model import DistFile, ProjectDetail
from packyard.repository.policy import hide_files
from packyard.serialize import file_version

Action = Literal["warn", "yank", "hide", "deny", "accepted"]
ADVISORIES = "advisories"
"""The `ProjectDetail.private` key: one object per affected version (`Finding.as_json`)."""
NAMED_IDS = 10  # ids a reason names before it counts the rest
_ACTIONS: Mapping[str, Action] = {"warn": "warn", "yank": "yank", "hide": "hide", "deny": "deny"}


@dataclass(frozen=True, slots=True)
class Finding:
    """What the advisories say about the files of one version: the ids enforced
    (malicious ones first), the ids accepted, and the action taken."""

    version: str
    ids: tuple[str, ...]
    accepted: tuple[str, ...]
    action: Action
    reason: str = ""  # `known vulnerability PYSEC-2021-98`: of a yank, a hide or a refusal

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"version": self.version, "action": self.action}
        found["ids"] = list(self.ids)
        if self.accepted:
            found["accepted"] = list(self.accepted)
        return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """A page as served, with the finding of each affected file by filename (the
    files of one version share one finding)."""

    detail: ProjectDetail
    findings: Mapping[str, Finding]

    def finding(self, filename: str) -> Finding | None:
        return self.findings.get(filename)


def action_of(policy: str) -> Action:
    """`policy` as an action; an unknown value (none passes the settings and the
    database's check) counts as the mildest, `warn`."""
    return _ACTIONS.get(policy, "warn")


def judge(detail: ProjectDetail, advisories: Advisories, policy: str) -> Verdict:
    """The page `detail` as the advisories in force and `policy` make it.

    Returns `detail` itself when no file is affected.
    """
    name = detail.name
    versions = {dist.filename: file_version(dist.filename) for dist in detail.files}
    hits = _hits(advisories.for_project(name), name, versions.values())
    by_version = {
        version: _finding(advisories, name, version, records, policy)
        for version, records in hits.items()
    }
    findings = {
        filename: by_version[version]
        for filename, version in versions.items()
        if version is not None and version in by_version
    }
    if not findings:
        return Verdict(detail, findings)
    return Verdict(_applied(detail, findings), findings)


def describe(ids: tuple[str, ...]) -> str:
    """`known vulnerabilities A, B and 3 more`; malicious-package ids come first
    as `malicious package MAL-…`."""
    malicious = tuple(i for i in ids if i.startswith(MALICIOUS_PREFIX))
    others = tuple(i for i in ids if not i.startswith(MALICIOUS_PREFIX))
    parts = []
    if malicious:
        parts.append(_named("malicious package", "malicious packages", malicious))
    if others:
        parts.append(_named("known vulnerability", "known vulnerabilities", others))
    return "; ".join(parts)


def _named(one: str, many: str, ids: tuple[str, ...]) -> str:
    more = len(ids) - NAMED_IDS
    listed = ", ".join(ids[:NAMED_IDS]) + (f" and {more} more" if more > 0 else "")
    return f"{one if len(ids) == 1 else many} {listed}"


def _hits(
    records: tuple[OsvRecord, ...], name: str, versions: Iterable[str | None]
) -> dict[str, list[OsvRecord]]:
    """The records affecting each of `versions` (those no record affects left out).

    Each record's ranges are found in the page's versions, sorted once, by
    bisection (`Candidates`), as `AffectedVersions.affects` would answer for
    each: asking each record of each version costs django's page (116
    records, 352 versions) the better part of a second.
    """
    if not records:
        return {}
    candidates = Candidates(dict.fromkeys(v for v in versions if v is not None))
    hits: dict[str, list[OsvRecord]] = {}
    for record in records:
        for version in candidates.affected(record.affected.get(name, ())):
            hits.setdefault(version, []).append(record)
    return hits


def _finding(
    advisories: Advisories, name: str, version: str, records: list[OsvRecord], policy: str
) -> Finding:
    """The finding of one version affected by `records`. A malicious record's
    acceptance is ignored."""
    malicious: list[str] = []
    enforced: list[str] = []
    accepted: list[str] = []
    for record in records:
        if record.malicious:
            malicious.append(record.id)
        elif advisories.accepted_reason(record.id, name) is not None:
            accepted.append(record.id)
        else:
            enforced.append(record.id)
    action: Action = "deny" if malicious else action_of(policy) if enforced else "accepted"
    ids = (*malicious, *enforced)
    return Finding(version, ids, tuple(accepted), action, describe(ids) if ids else "")


def _applied(detail: ProjectDetail, findings: Mapping[str, Finding]) -> ProjectDetail:
    """`detail` with its affected files yanked or hidden, and the findings listed."""
    files: list[DistFile] = []
    for dist in detail.files:
        found = findings.get(dist.filename)
        if found is not None and found.action == "yank" and not dist.yanked:
            dist = dataclasses.replace(dist, yanked=found.reason)
        files.append(dist)
    hidden = {name: f.reason for name, f in findings.items() if f.action in ("hide", "deny")}
    page = hide_files(dataclasses.replace(detail, files=tuple(files)), hidden)
    listed = [finding.as_json() for finding in dict.fromkeys(findings.values())]
    return dataclasses.replace(page, private={**page.private, ADVISORIES: listed})
