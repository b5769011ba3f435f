"""`PolicyRepository`: curation of one upstream (DESIGN §2).

Wraps ONE upstream source, inside the `PriorityRepository`, with that
upstream's `UpstreamSettings`:

- **allow / deny**: `fnmatch` globs matched against normalised names. An
  empty allow-list allows every name; a deny always wins. A refused name is
  `ProjectNotFound` *for this upstream only*: the priority merge then asks the
  next upstream, so `deny = ["torch"]` on PyPI plus a PyTorch index below it
  takes `torch` from the latter. To block a name everywhere, deny it on every
  upstream (the local store is never curated: in-house names are ours).
- **cool-down**: files uploaded less than `cooldown_days` ago are hidden, and
  so are files without an upload time (their age cannot be checked: uv's
  `--exclude-newer` drops them too, STANDARDS §4). A cool-down on an upstream
  that only speaks PEP 503 HTML, which carries no upload time, therefore hides
  every file: set none there.

A hidden file disappears from `files` (and its version from `versions` when no
visible file of that version is left); it is listed with its reason in
`ProjectDetail.private["hidden-files"]`, which the JSON page shows as
`_hidden-files`. `get_file` of a hidden file (or of its `.metadata`) raises
`FileHidden`, a `FileNotFound` whose message gives the reason.

Admins add allow and deny globs and override the cool-down at runtime
(`publish/policies.py`); a `StoredRulesReader` (`repository/policy_rules.py`)
hands them in, reloaded once per serial change. The effective allow-list is
the configured one plus the stored one, likewise the deny-list; a stored
cool-down replaces the configured one. A project an admin exempted from the
cool-down (`publish/cooldown_exemptions.py`) is served whole, however young
its files: the allow- and deny-lists still apply to it.

`hide_files` is the shared rule, also used by `SnapshotRepository`.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from typing_extensions import override

from packyard.errors import FileNotFound, ProjectNotFound
from packyard.model import DistFile, ProjectDetail, ProjectList, RequestContext, Resource
from packyard.repository.base import DelegatingRepository, IdentityMemo, Repository
from packyard.repository.policy_rules import NO_RULES, StoredRules, StoredRulesReader
from packyard.serialize import file_version, upload_time
from packyard.settings import UpstreamSettings

HIDDEN_FILES = "hidden-files"
"""The `ProjectDetail.private` key: a list of `{"filename", "reason"}` objects."""

METADATA_SUFFIX = ".metadata"
MAX_REMEMBERED_PAGES = 10_000
_SEPARATORS = re.compile(r"[-_.]+")
_FOREVER = float("inf")


class ProjectRefused(ProjectNotFound):
    """A project that a policy does not take from this source."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.reason = reason
        self.message = f"Project {name!r} is not offered: {reason}."
        self.args = (self.message,)


class FileHidden(FileNotFound):
    """A file that a policy or a snapshot hides; the message says why."""

    def __init__(self, name: str, filename: str, reason: str) -> None:
        super().__init__(name, filename)
        self.reason = reason
        self.message = f"File {filename!r} of project {name!r} is hidden: {reason}."
        self.args = (self.message,)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A filtered page, the reasons of the files it hides, and until when it holds.

    `valid_until` is a POSIX time: the first moment a hidden file would become
    visible (infinite when none will).
    """

    detail: ProjectDetail
    hidden: Mapping[str, str]
    valid_until: float = _FOREVER

    def reason_for(self, filename: str) -> str | None:
        """Why `filename`, or the distribution whose `.metadata` it is, is hidden."""
        return self.hidden.get(filename) or self.hidden.get(filename.removesuffix(METADATA_SUFFIX))


def hide_files(detail: ProjectDetail, reasons: Mapping[str, str]) -> ProjectDetail:
    """`detail` without the files named in `reasons`; `detail` itself if none.

    `versions` loses a version only when it had files and none is left
    visible (PEP 700: every file's version must be listed, and a version with
    no file at all is passed through). The reasons are appended to any
    `hidden-files` list a component below already wrote.
    """
    if not reasons:
        return detail
    kept = tuple(dist for dist in detail.files if dist.filename not in reasons)
    visible = {_version(dist) for dist in kept}
    dropped = {_version(dist) for dist in detail.files if dist.filename in reasons} - visible
    versions = tuple(version for version in detail.versions if version not in dropped)
    earlier = detail.private.get(HIDDEN_FILES)
    listed = list(earlier) if isinstance(earlier, list) else []
    listed += [{"filename": name, "reason": reason} for name, reason in reasons.items()]
    private = {**detail.private, HIDDEN_FILES: listed}
    return replace(detail, files=kept, versions=versions, private=private)


def timestamp(moment: datetime) -> float:
    """POSIX time of an upload time; a naive value is UTC, as the JSON writer takes it."""
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).timestamp()


class PageMemo:
    """The last verdict per project name, reused while its page `is` the same and it holds.

    Bounded: past `max_entries` names, the oldest entry is dropped.
    """

    def __init__(self, judge: Callable[[ProjectDetail, float], Verdict], max_entries: int) -> None:
        self._judge = judge
        self._max_entries = max_entries
        self._last: dict[str, tuple[ProjectDetail, Verdict]] = {}

    def __call__(self, name: str, detail: ProjectDetail, now: float) -> Verdict:
        hit = self._last.get(name)
        if hit is not None and hit[0] is detail and now < hit[1].valid_until:
            return hit[1]
        verdict = self._judge(detail, now)
        if name not in self._last and len(self._last) >= self._max_entries:
            del self._last[next(iter(self._last))]
        self._last[name] = (detail, verdict)
        return verdict


class NameRule:
    """Allow- and deny-lists of name globs, matched against normalised names.

    Globs are normalised like names (lower case, runs of `-_.` as one `-`),
    so `Acme_*` and `acme-*` are the same rule.
    """

    def __init__(self, allow: Sequence[str], deny: Sequence[str]) -> None:
        # Without duplicates, so that equal rules compare equal however they were given.
        self.allow = tuple(dict.fromkeys(normal_glob(glob) for glob in allow))
        self.deny = tuple(dict.fromkeys(normal_glob(glob) for glob in deny))
        self._allow = _compile(self.allow)
        self._deny = _compile(self.deny)

    def refusal(self, name: str) -> str | None:
        """Why normalised `name` is refused, or None if it is allowed."""
        if self._deny is not None and self._deny.match(name):
            glob = next(g for g in self.deny if fnmatch.fnmatchcase(name, g))
            return f"the name matches the deny-list entry {glob!r}"
        if self._allow is not None and not self._allow.match(name):
            return "the name is not on the allow-list"
        return None


class PolicyRepository(DelegatingRepository):
    """Allow-list, deny-list and cool-down of one upstream source (module docstring).

    Identity rule: the same input page gives the same output page for as long
    as no hidden file's cool-down has ended and the effective policy is the
    same; the clock is read on each call, so a file appears the first request
    after its cool-down, to the second.
    """

    def __init__(
        self,
        source: Repository,
        settings: UpstreamSettings,
        *,
        rules: StoredRulesReader | None = None,
        clock: Callable[[], float] = time.time,
        max_pages: int = MAX_REMEMBERED_PAGES,
    ) -> None:
        """`rules`: the admins' rules of this upstream, which this component then
        owns and closes in `aclose`; None applies the configuration alone."""
        super().__init__(source)
        self.label = settings.label
        self._settings = settings
        self._rules = rules
        self._max_pages = max_pages
        self._stored = NO_RULES
        self.names = NameRule(settings.allow, settings.deny)
        self.cooldown = timedelta(days=settings.cooldown_days)
        self._clock = clock
        self._pages = PageMemo(self._judge, max_pages)
        self._lists: IdentityMemo[ProjectList, ProjectList] = IdentityMemo(self._filter_list)

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        """The source's list without refused names (the same object while unchanged).

        Raises:
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the stored rules cannot be read.
            UpstreamError, UpstreamUnavailable: from the source.
        """
        await self._refresh()
        return self._lists("", await self.source.list_projects(ctx))

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The source's page without the files in cool-down.

        Raises:
            ProjectRefused: the name is denied or not allowed (a ProjectNotFound).
            ProjectNotFound, UpstreamError, UpstreamUnavailable: from the source.
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the stored rules cannot be read.
        """
        await self._refresh()
        self._check_name(name)
        return (await self._verdict(name, ctx)).detail

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """The source's file, unless the policy hides it.

        Raises:
            ProjectRefused: the name is denied or not allowed.
            FileHidden: the file (or the wheel of a `.metadata` file) is in cool-down.
            ProjectNotFound, FileNotFound, UpstreamError, UpstreamUnavailable: from the source.
            sqlite3.Error, sqlalchemy.exc.SQLAlchemyError: the stored rules cannot be read.
        """
        await self._refresh()
        self._check_name(name)
        if self.cooldown and not self._exempt(name):
            reason = (await self._verdict(name, ctx)).reason_for(filename)
            if reason is not None:
                raise FileHidden(name, filename, reason)
        return await self.source.get_file(name, filename, ctx)

    @override
    async def aclose(self) -> None:
        if self._rules is not None:
            self._rules.close()
        await super().aclose()

    async def _refresh(self) -> None:
        """Apply the stored rules if they changed since the last call.

        Only the part that changed is rebuilt, with a fresh memo: new names
        re-filter the project list, a new cool-down re-judges pages; equal
        effective rules keep every memo, so pages keep their identity.
        """
        if self._rules is None:
            return
        stored = await self._rules.current()
        if stored is self._stored:
            return
        self._stored = stored
        names, cooldown = _effective(self._settings, stored)
        # Swapped without an await in between: a request sees one policy after its awaits.
        if (names.allow, names.deny) != (self.names.allow, self.names.deny):
            self.names = names
            self._lists = IdentityMemo(self._filter_list)
        if cooldown != self.cooldown:
            self.cooldown = cooldown
            self._pages = PageMemo(self._judge, self._max_pages)

    def _exempt(self, name: str) -> bool:
        """Whether an admin exempted project `name` from the cool-down."""
        exempt = self._stored.exempt
        return bool(exempt) and _normal_name(name) in exempt

    def _check_name(self, name: str) -> None:
        reason = self.names.refusal(name)
        if reason is not None:
            raise ProjectRefused(name, f"{reason} of upstream {self.label}")

    async def _verdict(self, name: str, ctx: RequestContext) -> Verdict:
        detail = await self.source.get_project(name, ctx)
        if not self.cooldown or self._exempt(name):
            return Verdict(detail, {})
        return self._pages(name, detail, self._clock())

    def _judge(self, detail: ProjectDetail, now: float) -> Verdict:
        """Hide what is younger than the cool-down at `now`; valid until the first ends."""
        seconds = self.cooldown.total_seconds()
        reasons: dict[str, str] = {}
        valid_until = _FOREVER
        for dist in detail.files:
            if dist.upload_time is None:
                reasons[dist.filename] = (
                    f"cool-down of {_days(seconds)}: upstream {self.label} gives no "
                    "upload time, so the file's age cannot be checked"
                )
                continue
            visible_at = timestamp(dist.upload_time) + seconds
            if visible_at > now:
                valid_until = min(valid_until, visible_at)
                reasons[dist.filename] = (
                    f"cool-down of {_days(seconds)}: uploaded {upload_time(dist.upload_time)}, "
                    f"visible from {_iso(visible_at)}"
                )
        return Verdict(hide_files(detail, reasons), reasons, valid_until)

    def _filter_list(self, projects: ProjectList) -> ProjectList:
        kept = tuple(
            entry
            for entry in projects.projects
            if self.names.refusal(_normal_name(entry.name)) is None
        )
        return projects if len(kept) == len(projects.projects) else ProjectList(kept)


def _version(dist: DistFile) -> str | None:
    return file_version(dist.filename)


def _normal_name(name: str) -> str:
    return _SEPARATORS.sub("-", name).lower()


def normal_glob(glob: str) -> str:
    """`glob` normalised like a project name (PEP 503): `Acme_*` gives `acme-*`."""
    return _SEPARATORS.sub("-", glob.strip()).lower()


def _effective(settings: UpstreamSettings, stored: StoredRules) -> tuple[NameRule, timedelta]:
    """The configuration plus the stored rules: both allow-lists, both deny-lists,
    and the stored cool-down if one is set, else the configured one."""
    names = NameRule((*settings.allow, *stored.allow), (*settings.deny, *stored.deny))
    days = settings.cooldown_days if stored.cooldown_days is None else stored.cooldown_days
    return names, timedelta(days=days)


def _compile(globs: Sequence[str]) -> re.Pattern[str] | None:
    """One regular expression for a list of globs (None for an empty list)."""
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(glob) for glob in globs))


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} day" + ("" if days == 1 else "s")


def _iso(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_policy(
    source: Repository, settings: UpstreamSettings, rules: StoredRulesReader | None = None
) -> Repository:
    """`source` behind a `PolicyRepository`, or `source` itself if `settings` curate
    nothing and no stored `rules` can be added at runtime."""
    if rules is None and not settings.allow and not settings.deny and not settings.cooldown_days:
        return source
    return PolicyRepository(source, settings, rules=rules)
