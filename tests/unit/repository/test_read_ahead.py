"""Read-ahead: an upstream page's newest release has its metadata read before anyone asks."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from packyard.errors import UpstreamUnavailable
from packyard.model import ANONYMOUS, DistFile
from packyard.repository.base import Repository
from packyard.repository.metadata import MetadataRepository
from packyard.repository.priority import PriorityRepository
from packyard.repository.read_ahead import ReadAhead, newest_release
from packyard.repository.remote_metadata import RemoteMetadataReader
from packyard.storage.filesystem import FilesystemBlobStore
from tests.builders import build_wheel
from tests.unit.fakes import MemoryRepository

pytestmark = pytest.mark.anyio


def wheels(*filenames: str, yanked: str = "") -> list[DistFile]:
    return [DistFile(name, yanked=yanked in name and bool(yanked)) for name in filenames]


def test_the_newest_final_unyanked_release_is_chosen() -> None:
    found = newest_release(
        wheels(
            "a-1.0-py3-none-any.whl",
            "a-2.0-py3-none-any.whl",
            "a-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "a-3.0rc1-py3-none-any.whl",  # a pre-release: resolvers skip it
            "a-4.0-py3-none-any.whl",  # yanked below
            "not-a-wheel.zip",
            yanked="a-4.0",
        )
    )
    assert [dist.filename for dist in found] == [
        "a-2.0-py3-none-any.whl",
        "a-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]


def test_a_release_with_many_wheels_is_left_to_the_client() -> None:
    many = [f"a-1.0-cp3{minor}-cp3{minor}-win_amd64.whl" for minor in range(8, 14)]
    assert newest_release(wheels(*many), max_wheels=3) == []
    assert newest_release(wheels(), max_wheels=3) == []


async def test_each_wheel_is_read_once_and_concurrency_is_bounded() -> None:
    running, most, calls = 0, 0, []

    async def extract(project: str, dist: DistFile) -> bytes:
        nonlocal running, most
        running += 1
        most = max(most, running)
        calls.append(dist.filename)
        await anyio.sleep(0.01)
        running -= 1
        return b""

    ahead = ReadAhead(extract, max_wheels=5, concurrency=2)
    release = wheels(*[f"a-1.0-cp3{minor}-none-any.whl" for minor in range(9, 14)])
    ahead.consider("a", release)
    ahead.consider("a", release)  # the same page again: nothing more
    await ahead.settle()
    assert sorted(calls) == sorted(dist.filename for dist in release)
    assert most == 2


async def test_a_failure_is_logged_and_raised_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    async def extract(project: str, dist: DistFile) -> bytes:
        raise UpstreamUnavailable("pypi", "could not be reached")

    ahead = ReadAhead(extract)
    caplog.set_level(logging.DEBUG, logger="packyard.repository.read_ahead")
    ahead.consider("a", wheels("a-1.0-py3-none-any.whl"))
    await ahead.settle()
    assert "could not be reached" in caplog.text


async def test_closing_cancels_reads_under_way() -> None:
    started = anyio.Event()

    async def extract(project: str, dist: DistFile) -> bytes:
        started.set()
        await anyio.sleep(60)
        return b""

    ahead = ReadAhead(extract)
    ahead.consider("a", wheels("a-1.0-py3-none-any.whl"))
    await started.wait()
    with anyio.fail_after(5):
        await ahead.aclose()


async def test_a_page_of_an_upstream_gets_its_newest_metadata_before_it_is_asked(
    tmp_path: Path,
) -> None:
    old, new = (build_wheel(tmp_path, "demo", version) for version in ("1.0", "2.0"))
    upstream = MemoryRepository(
        "pypi", {"demo": {old.name: old.read_bytes(), new.name: new.read_bytes()}}
    )
    store = FilesystemBlobStore(tmp_path / "blobs")
    remote = RemoteMetadataReader(store)
    chain = MetadataRepository(upstream, store, remote=remote, read_ahead=True)

    page = await chain.get_project("demo", ANONYMOUS)
    await chain.settle()
    newest = next(dist for dist in page.files if dist.filename == new.name)
    assert remote.lookup(newest, "pypi") is not None
    assert upstream.files_asked == [new.name]  # the older release is not read

    served = await chain.get_file("demo", new.name + ".metadata", ANONYMOUS)
    assert upstream.files_asked == [new.name]  # the client's request found it ready
    assert served.filename == new.name + ".metadata"
    await chain.aclose()


async def test_read_ahead_is_off_unless_asked_for(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    upstream = MemoryRepository("pypi", {"demo": {wheel.name: wheel.read_bytes()}})
    remote = RemoteMetadataReader(FilesystemBlobStore(tmp_path / "blobs"))
    chain = MetadataRepository(upstream, FilesystemBlobStore(tmp_path / "blobs"), remote=remote)
    page = await chain.get_project("demo", ANONYMOUS)
    await chain.settle()
    assert remote.lookup(page.files[0], "pypi") is None
    assert upstream.files_asked == []
    await chain.aclose()


def reading_ahead(
    source: Repository, tmp_path: Path, *, follow_dependencies: bool = True
) -> MetadataRepository:
    """A metadata component over `source` that reads ahead, blobs under `tmp_path`."""
    store = FilesystemBlobStore(tmp_path / "blobs")
    return MetadataRepository(
        source,
        store,
        remote=RemoteMetadataReader(store),
        read_ahead=True,
        follow_dependencies=follow_dependencies,
    )


def wheel_of(tmp_path: Path, name: str, *requires: str) -> dict[str, bytes]:
    wheel = build_wheel(tmp_path, name, "1.0", requires_dist=requires)
    return {wheel.name: wheel.read_bytes()}


async def test_the_projects_a_read_ahead_requires_are_fetched_and_read_ahead_in_turn(
    tmp_path: Path,
) -> None:
    upstream = MemoryRepository(
        "pypi",
        {
            "app": wheel_of(
                tmp_path, "app", "lib>=1", "Missing", 'only-for-tests; extra == "test"'
            ),
            "lib": wheel_of(tmp_path, "lib", 'base; python_version >= "3.8"'),
            "base": wheel_of(tmp_path, "base", "lib"),  # a cycle ends the walk too
            "only-for-tests": wheel_of(tmp_path, "only-for-tests"),
        },
    )
    chain = reading_ahead(upstream, tmp_path)

    await chain.get_project("app", ANONYMOUS)
    await chain.settle()

    # An extra's requirement is left to a client that asks for the extra; a
    # platform or Python marker is not (the server does not know the client's).
    assert sorted(upstream.projects_asked) == ["app", "base", "lib", "missing"]
    assert sorted(upstream.files_asked) == [
        "app-1.0-py3-none-any.whl",
        "base-1.0-py3-none-any.whl",
        "lib-1.0-py3-none-any.whl",
    ]
    # The client's turn: lib's metadata is ready, no wheel is read again.
    page = await chain.get_project("lib", ANONYMOUS)
    assert page.files[0].core_metadata != True  # noqa: E712 (its sha256, not just True)
    await chain.get_file("lib", "lib-1.0-py3-none-any.whl.metadata", ANONYMOUS)
    assert len(upstream.files_asked) == 3
    await chain.aclose()


async def test_an_in_house_dependency_is_never_asked_of_the_upstream(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    local = MemoryRepository("local", {"acme-core": wheel_of(tmp_path / "local", "acme-core")})
    # The upstream has a public project of the same name: a confusion attack.
    upstream = MemoryRepository(
        "pypi",
        {
            "app": wheel_of(tmp_path, "app", "acme-core"),
            "acme-core": wheel_of(tmp_path, "acme-core", "evil"),
        },
    )
    chain = reading_ahead(PriorityRepository([local, upstream]), tmp_path)

    await chain.get_project("app", ANONYMOUS)
    await chain.settle()

    assert "acme-core" in local.projects_asked  # visited, and the in-house store answered
    assert set(upstream.projects_asked) == {"app"}
    await chain.aclose()


async def test_dependencies_are_not_followed_unless_asked_for(tmp_path: Path) -> None:
    upstream = MemoryRepository(
        "pypi", {"app": wheel_of(tmp_path, "app", "lib"), "lib": wheel_of(tmp_path, "lib")}
    )
    chain = reading_ahead(upstream, tmp_path, follow_dependencies=False)
    await chain.get_project("app", ANONYMOUS)
    await chain.settle()
    assert upstream.projects_asked == ["app"]
    assert upstream.files_asked == ["app-1.0-py3-none-any.whl"]
    await chain.aclose()


async def test_each_required_project_is_visited_once(tmp_path: Path) -> None:
    visits: list[str] = []
    metadata = {
        "a-1.0-py3-none-any.whl": b"Name: a\nVersion: 1.0\nRequires-Dist: shared\n\n",
        "b-1.0-py3-none-any.whl": b"Name: b\nVersion: 1.0\nRequires-Dist: Shared>=2\n\n",
    }

    async def extract(project: str, dist: DistFile) -> bytes:
        return metadata[dist.filename]

    async def visit(project: str) -> None:
        visits.append(project)

    ahead = ReadAhead(extract, visit=visit)
    ahead.consider("a", wheels("a-1.0-py3-none-any.whl"))
    ahead.consider("b", wheels("b-1.0-py3-none-any.whl"))
    await ahead.settle()
    assert visits == ["shared"]
