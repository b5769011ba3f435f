"""The merge rule against dependency confusion (DESIGN §2).

The first source, in priority order, that has a project owns the whole
project: its page and its files. The local store comes first, so an upstream
release of an in-house name is never offered, whatever its version.
"""

from __future__ import annotations

from collections.abc import Sequence

from packaging.utils import canonicalize_name
from typing_extensions import override

from packyard.errors import ProjectNotFound
from packyard.model import ProjectDetail, ProjectEntry, ProjectList, RequestContext, Resource
from packyard.repository.base import IdentityMemo, Repository


class PriorityRepository(Repository):
    """Asks each source in turn; the first that knows a project answers for it.

    A source that fails (anything but ProjectNotFound) stops the search and the
    error is raised: falling through to a lower source while a higher one is
    down could hand out another index's project of the same name.
    """

    def __init__(self, sources: Sequence[Repository]) -> None:
        if not sources:
            raise ValueError("PriorityRepository needs at least one source")
        self.sources = tuple(sources)
        self._merged: IdentityMemo[tuple[ProjectList, ...], ProjectList] = IdentityMemo(
            _merge_lists
        )
        self._last_lists: tuple[ProjectList, ...] = ()

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        lists = tuple([await source.list_projects(ctx) for source in self.sources])
        # Keep the same tuple while every source returned the same list, so the
        # memo (and the edge's rendered page) is reused.
        if len(lists) == len(self._last_lists) and all(
            new is old for new, old in zip(lists, self._last_lists, strict=True)
        ):
            lists = self._last_lists
        self._last_lists = lists
        return self._merged("", lists)

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        return (await self._owner(name, ctx))[1]

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        owner, _ = await self._owner(name, ctx)
        return await owner.get_file(name, filename, ctx)

    @override
    async def aclose(self) -> None:
        for source in self.sources:
            await source.aclose()

    async def _owner(self, name: str, ctx: RequestContext) -> tuple[Repository, ProjectDetail]:
        """The first source that has `name`, and its page.

        Raises:
            ProjectNotFound: no source has it; the first refusal of a policy
                (`ProjectRefused`, whose message says why) if one refused it.
            UpstreamError, UpstreamUnavailable: a source failed before one answered.
        """
        refused: ProjectNotFound | None = None
        for source in self.sources:
            try:
                return source, await source.get_project(name, ctx)
            except ProjectNotFound as exc:
                # A policy's refusal (a subclass) says why: the 404's message, if
                # no source has the project after all.
                if refused is None and type(exc) is not ProjectNotFound:
                    refused = exc
        raise refused or ProjectNotFound(name)


def _merge_lists(lists: tuple[ProjectList, ...]) -> ProjectList:
    """One entry per normalised name; the higher source's display name wins."""
    seen: set[str] = set()
    merged: list[ProjectEntry] = []
    for project_list in lists:
        for entry in project_list.projects:
            key = canonicalize_name(entry.name)
            if key not in seen:
                seen.add(key)
                merged.append(entry)
    return ProjectList(tuple(merged))
