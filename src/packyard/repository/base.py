"""The one interface of the read path, and the delegating base class.

Every component implements `Repository`. A source (the local store, an
upstream index) answers from its own data; a wrapper derives from
`DelegatingRepository` and overrides only what it changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from packyard.model import ProjectDetail, ProjectList, RequestContext, Resource


class Repository(ABC):
    """A source of project lists, project pages and files.

    Names passed in are already normalised (`canonicalize_name`) and valid.
    """

    @abstractmethod
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        """Every project this component offers.

        Raises:
            UpstreamError: an upstream answered with something unusable.
            UpstreamUnavailable: an upstream could not be reached.
        """

    @abstractmethod
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """One project's page.

        Unchanged data must come back as the very same object, so the HTTP
        edge can reuse what it rendered (see `IdentityMemo`).

        Raises:
            ProjectNotFound: no such project here.
            UpstreamError, UpstreamUnavailable: an upstream failed.
        """

    @abstractmethod
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        """A file of the project, or a computed file such as `<wheel>.metadata`.

        Raises:
            ProjectNotFound: no such project here.
            FileNotFound: the project has no such file.
            UpstreamError, UpstreamUnavailable: an upstream failed.
        """

    async def aclose(self) -> None:
        """Release clients and connections; called once when the app stops."""
        return


class DelegatingRepository(Repository):
    """Passes every call to `source`; subclasses override what they change."""

    def __init__(self, source: Repository) -> None:
        self.source = source

    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        return await self.source.list_projects(ctx)

    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        return await self.source.get_project(name, ctx)

    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        return await self.source.get_file(name, filename, ctx)

    async def aclose(self) -> None:
        await self.source.aclose()


In = TypeVar("In")
Out = TypeVar("Out")


class IdentityMemo(Generic[In, Out]):
    """Remembers `transform(value)` for the last value seen under each key.

    A wrapper that rewrites a `ProjectDetail` uses this so that the same input
    object gives the same output object, which keeps the edge's page cache warm.
    """

    def __init__(self, transform: Callable[[In], Out]) -> None:
        self._transform = transform
        self._last: dict[str, tuple[In, Out]] = {}

    def __call__(self, key: str, value: In) -> Out:
        hit = self._last.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        result = self._transform(value)
        self._last[key] = (value, result)
        return result
