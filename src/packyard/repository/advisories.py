"""`AdvisoryRepository`: known vulnerabilities enforced by policy, per source (DESIGN §2).

It wraps the merged page, above `YankRepository` and below
`MetadataRepository`, so it sees every source's page and knows which source
served it (`ProjectDetail.source`: an upstream's label, or `local`). Its
policy is the one an admin set at runtime for that source
(`publish/advisory_rules.py`, `Advisories.policy_for`), else the
configuration's: `advisories_policy` of that `[[upstreams]]` entry, else
`[advisories] policy`; `[advisories] local_policy` for in-house packages.
What a policy does to a page is `repository/advisory_verdicts.py`'s.

Downloads: a file whose action is `deny` (and its `.metadata`) is refused
with `FileDenied`, a 403 whose message names the advisories. Every other
affected file is served as its source gives it, with an `AdvisoryNote`
(ids, source, action) on the resource for telemetry to count and log. A
hidden file stays downloadable by its URL (a lock file's), a yanked one by a
pin (PEP 592): only `deny` refuses bytes.

Hot path: the advisories are `AdvisoryIndexReader`'s, kept per serial. A
project that no advisory names costs one dict lookup and passes through as
the very same object. A judged page is kept per project and handed back, the
same object, while its input page is the same object and the project's
records, its source's policy and the accepted risks are unchanged: an
unrelated write (another project's upload) re-judges nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from typing_extensions import override

from packyard.advisories.index import Advisories, AdvisoryIndexReader
from packyard.advisories.records import OsvRecord
from packyard.errors import FileDenied
from packyard.model import SOURCE_LOCAL, AdvisoryNote, ProjectDetail, RequestContext, Resource
from packyard.repository.advisory_verdicts import Verdict, judge
from packyard.repository.base import DelegatingRepository, Repository
from packyard.settings import AdvisorySettings, UpstreamSettings

METADATA_SUFFIX = ".metadata"
MAX_REMEMBERED_PAGES = 10_000


@dataclass(frozen=True, slots=True)
class ConfiguredPolicies:
    """The configuration's advisory policy of each source."""

    default: str
    local: str
    by_upstream: Mapping[str, str]

    @classmethod
    def of(
        cls, settings: AdvisorySettings, upstreams: tuple[UpstreamSettings, ...]
    ) -> ConfiguredPolicies:
        by_upstream = {
            upstream.label: upstream.advisories_policy or settings.policy for upstream in upstreams
        }
        return cls(settings.policy, settings.local_policy, by_upstream)

    def of_source(self, source: str) -> str:
        """The configured policy of `source`: an upstream's label or `local`; a
        source the configuration does not name (a custom component's) gets the
        default."""
        if source == SOURCE_LOCAL:
            return self.local
        return self.by_upstream.get(source, self.default)


@dataclass(slots=True)
class _Judged:
    """One project's last verdict, and what it was judged from."""

    page: ProjectDetail
    state: Advisories
    records: tuple[OsvRecord, ...]
    policy: str
    accepted: Mapping[tuple[str, str], str]
    verdict: Verdict


class AdvisoryRepository(DelegatingRepository):
    """Marks, yanks, hides or denies the files affected by the advisories in force
    (module docstring). `list_projects` passes through."""

    def __init__(
        self,
        source: Repository,
        advisories: AdvisoryIndexReader,
        policies: ConfiguredPolicies,
        *,
        owns_reader: bool = False,
        max_pages: int = MAX_REMEMBERED_PAGES,
    ) -> None:
        """`owns_reader`: close `advisories` in `aclose` (False when it is shared)."""
        super().__init__(source)
        self._advisories = advisories
        self._owns_reader = owns_reader
        self.policies = policies
        self._max_pages = max_pages
        self._judged: dict[str, _Judged] = {}

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The source's page, its affected files yanked, hidden or listed.

        Raises:
            whatever the source raises (ProjectNotFound, UpstreamError, ...);
            sqlalchemy.exc.SQLAlchemyError: the advisories cannot be read.
        """
        state = await self._advisories.current()
        detail = await self.source.get_project(name, ctx)
        if not state.for_project(name):
            return detail
        return self._verdict(name, detail, state).detail

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """The source's file, noted with its advisories, unless the policy denies it.

        Raises:
            FileDenied: the file (or the wheel of a `.metadata` file) is affected
                and its action is `deny` (a 403 naming the advisories).
            whatever the source raises (ProjectNotFound, FileNotFound, ...);
            sqlalchemy.exc.SQLAlchemyError: the advisories cannot be read.
        """
        state = await self._advisories.current()
        if not state.for_project(name):
            return await self.source.get_file(name, filename, ctx)
        detail = await self.source.get_project(name, ctx)
        finding = self._verdict(name, detail, state).finding(filename.removesuffix(METADATA_SUFFIX))
        if finding is None:  # not affected, or not a file of the page: the source says
            return await self.source.get_file(name, filename, ctx)
        if finding.action == "deny":
            policy = self._policy(state, detail.source)
            why = f"{finding.reason} (advisory policy '{policy}' of source {detail.source})"
            if policy != "deny":
                why = f"{finding.reason} (always refused)"
            raise FileDenied(name, filename, why, advisories=finding.ids, source=detail.source)
        resource = await self.source.get_file(name, filename, ctx)
        note = AdvisoryNote(finding.ids or finding.accepted, detail.source, finding.action)
        return dataclasses.replace(resource, advisories=note)

    @override
    async def aclose(self) -> None:
        if self._owns_reader:
            self._advisories.close()
        await super().aclose()

    def _policy(self, state: Advisories, source: str) -> str:
        return state.policy_for(source, self.policies.of_source(source))

    def _verdict(self, name: str, detail: ProjectDetail, state: Advisories) -> Verdict:
        """The kept verdict if nothing it depends on changed, else a new one
        (the kept one again if the new one is equal, for the page's identity)."""
        hit = self._judged.get(name)
        if hit is not None and hit.page is detail:
            if hit.state is state:
                return hit.verdict
            records = state.for_project(name)
            policy = self._policy(state, detail.source)
            if hit.records is records and hit.policy == policy and hit.accepted == state.accepted:
                hit.state = state
                return hit.verdict
        policy = self._policy(state, detail.source)
        verdict = judge(detail, state, policy)
        if hit is not None and hit.page is detail and verdict == hit.verdict:
            verdict = hit.verdict
        if name not in self._judged and len(self._judged) >= self._max_pages:
            del self._judged[next(iter(self._judged))]
        records = state.for_project(name)
        self._judged[name] = _Judged(detail, state, records, policy, state.accepted, verdict)
        return verdict
