"""Read-ahead: an upstream page's newest release has its metadata read before anyone asks."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from packyard.errors import UpstreamUnavailable
from packyard.model import ANONYMOUS, DistFile
from packyard.repository.metadata import MetadataRepository
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

    async def extract(project: str, dist: DistFile) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        calls.append(dist.filename)
        await anyio.sleep(0.01)
        running -= 1

    ahead = ReadAhead(extract, max_wheels=5, concurrency=2)
    release = wheels(*[f"a-1.0-cp3{minor}-none-any.whl" for minor in range(9, 14)])
    ahead.consider("a", release)
    ahead.consider("a", release)  # the same page again: nothing more
    await ahead.settle()
    assert sorted(calls) == sorted(dist.filename for dist in release)
    assert most == 2


async def test_a_failure_is_logged_and_raised_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    async def extract(project: str, dist: DistFile) -> None:
        raise UpstreamUnavailable("pypi", "could not be reached")

    ahead = ReadAhead(extract)
    caplog.set_level(logging.DEBUG, logger="packyard.repository.read_ahead")
    ahead.consider("a", wheels("a-1.0-py3-none-any.whl"))
    await ahead.settle()
    assert "could not be reached" in caplog.text


async def test_closing_cancels_reads_under_way() -> None:
    started = anyio.Event()

    async def extract(project: str, dist: DistFile) -> None:
        started.set()
        await anyio.sleep(60)

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
    assert remote.lookup(newest) is not None
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
    assert remote.lookup(page.files[0]) is None
    assert upstream.files_asked == []
    await chain.aclose()
