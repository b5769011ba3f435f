"""In-memory fakes of the read path, for unit tests of components and routes."""

from __future__ import annotations

from hashlib import sha256

from typing_extensions import override

from packyard.errors import FileNotFound, ProjectNotFound, UpstreamUnavailable
from packyard.model import (
    ByteRange,
    DistFile,
    InlineFile,
    ProjectDetail,
    ProjectEntry,
    ProjectList,
    RequestContext,
    Resource,
)
from packyard.repository.base import Repository


class MemoryRepository(Repository):
    """A source holding files in memory: `{project: {filename: content}}`.

    Returns the same ProjectDetail object for as long as its data is unchanged,
    as real sources must. `calls` counts get_project calls; `down` makes every
    call fail as an unreachable upstream would; `projects_asked` and
    `files_asked` list the names asked of `get_project` and `get_file`.
    """

    def __init__(self, label: str, projects: dict[str, dict[str, bytes]]) -> None:
        self.label = label
        self.projects = projects
        self.calls = 0
        self.down = False
        self.projects_asked: list[str] = []
        self.files_asked: list[str] = []
        self._details: dict[str, ProjectDetail] = {}
        self._list: ProjectList | None = None

    def _check(self) -> None:
        if self.down:
            raise UpstreamUnavailable(self.label, "could not be reached")

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        self._check()
        if self._list is None:
            self._list = ProjectList(tuple(ProjectEntry(name) for name in self.projects))
        return self._list

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        self.calls += 1
        self.projects_asked.append(name)
        self._check()
        if name not in self.projects:
            raise ProjectNotFound(name)
        if name not in self._details:
            files = tuple(
                DistFile(
                    filename, hashes={"sha256": sha256(content).hexdigest()}, size=len(content)
                )
                for filename, content in self.projects[name].items()
            )
            self._details[name] = ProjectDetail(name, files, source=self.label)
        return self._details[name]

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        self.files_asked.append(filename)
        self._check()
        files = self.projects.get(name)
        if files is None:
            raise ProjectNotFound(name)
        if filename not in files:
            raise FileNotFound(name, filename)
        content = files[filename]
        return InlineFile(filename, content, sha256(content).hexdigest())


class PageSource(Repository):
    """A source of fixed pages: `{name: ProjectDetail}`, the same objects every call."""

    def __init__(self, label: str, pages: dict[str, ProjectDetail]) -> None:
        self.label = label
        self.pages = pages
        self.projects = ProjectList(tuple(ProjectEntry(name) for name in pages))

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        return self.projects

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        if name not in self.pages:
            raise ProjectNotFound(name)
        return self.pages[name]

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        page = await self.get_project(name, ctx)
        if filename not in {dist.filename for dist in page.files} and not filename.endswith(
            ".metadata"
        ):
            raise FileNotFound(name, filename)
        content = f"{self.label}:{filename}".encode()
        return InlineFile(filename, content, sha256(content).hexdigest())


def part_of(content: bytes, byte_range: ByteRange | None) -> bytes:
    """The bytes of `content` that a `RemoteOpener` yields for `byte_range`."""
    if byte_range is None:
        return content
    return content[byte_range.start : byte_range.end + 1]
