"""PriorityRepository: the first source that has a project owns all of it."""

from __future__ import annotations

import pytest

from packyard.errors import FileNotFound, ProjectNotFound, UpstreamUnavailable
from packyard.model import ANONYMOUS, InlineFile
from packyard.repository.policy import apply_policy
from packyard.repository.priority import PriorityRepository
from packyard.settings import UpstreamSettings
from tests.unit.fakes import MemoryRepository

pytestmark = pytest.mark.anyio


def sources() -> tuple[MemoryRepository, MemoryRepository]:
    local = MemoryRepository("local", {"acme-tools": {"acme_tools-1.0-py3-none-any.whl": b"ours"}})
    upstream = MemoryRepository(
        "pypi",
        {
            "acme-tools": {"acme_tools-99.0-py3-none-any.whl": b"squatter"},
            "requests": {"requests-2.0-py3-none-any.whl": b"public"},
        },
    )
    return local, upstream


async def test_an_in_house_name_shows_only_in_house_files() -> None:
    local, upstream = sources()
    detail = await PriorityRepository([local, upstream]).get_project("acme-tools", ANONYMOUS)
    assert [f.filename for f in detail.files] == ["acme_tools-1.0-py3-none-any.whl"]
    assert upstream.calls == 0


async def test_an_upstream_file_of_an_in_house_name_is_not_found() -> None:
    local, upstream = sources()
    chain = PriorityRepository([local, upstream])
    with pytest.raises(FileNotFound):
        await chain.get_file("acme-tools", "acme_tools-99.0-py3-none-any.whl", ANONYMOUS)


async def test_other_names_come_from_the_upstream() -> None:
    local, upstream = sources()
    chain = PriorityRepository([local, upstream])
    detail = await chain.get_project("requests", ANONYMOUS)
    assert detail.source == "pypi"
    resource = await chain.get_file("requests", "requests-2.0-py3-none-any.whl", ANONYMOUS)
    assert isinstance(resource, InlineFile)
    assert resource.content == b"public"


async def test_a_name_nobody_has_is_not_found() -> None:
    with pytest.raises(ProjectNotFound):
        await PriorityRepository(list(sources())).get_project("nothing", ANONYMOUS)


async def test_a_name_a_policy_refused_is_not_found_with_the_policys_reason() -> None:
    local, upstream = sources()
    denied = apply_policy(upstream, UpstreamSettings(url="https://pypi.test/", deny=("requests",)))

    with pytest.raises(ProjectNotFound) as caught:
        await PriorityRepository([local, denied]).get_project("requests", ANONYMOUS)

    assert caught.value.message == (
        "Project 'requests' is not offered: the name matches the deny-list entry 'requests' "
        "of upstream https://pypi.test/."
    )


async def test_a_failing_higher_source_is_not_skipped() -> None:
    first = MemoryRepository("mirror", {})
    first.down = True
    second = MemoryRepository("other", {"requests": {"requests-1.0.tar.gz": b"x"}})
    with pytest.raises(UpstreamUnavailable):
        await PriorityRepository([first, second]).get_project("requests", ANONYMOUS)
    assert second.calls == 0


async def test_the_project_list_merges_names_once_and_is_stable() -> None:
    local, upstream = sources()
    chain = PriorityRepository([local, upstream])
    first = await chain.list_projects(ANONYMOUS)
    assert [p.name for p in first.projects] == ["acme-tools", "requests"]
    assert await chain.list_projects(ANONYMOUS) is first


def test_a_chain_needs_a_source() -> None:
    with pytest.raises(ValueError, match="at least one source"):
        PriorityRepository([])
