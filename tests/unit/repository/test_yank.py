"""YankRepository: this site's yanks of upstream files on upstream pages, cheaply and stably."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio.lowlevel
import pytest
from sqlalchemy import insert

from packyard.auth.identity import Identity
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.db.governance import YankOverride
from packyard.db.serial import bump_serial
from packyard.model import ANONYMOUS, DistFile, ProjectDetail, StoredFile
from packyard.publish.importer import import_directory
from packyard.publish.yanks import unyank, yank
from packyard.repository.local import LocalRepository
from packyard.repository.priority import PriorityRepository
from packyard.repository.yank import Override, YankRepository, apply_overrides
from tests.builders import LocalStore, build_wheel, make_local_store
from tests.unit.fakes import MemoryRepository

ADMIN = Identity(kind="cli", name="root", is_admin=True)
PUBLIC = {
    "public-lib": {
        "public_lib-1.0-py3-none-any.whl": b"one",
        "public_lib-2.0-py3-none-any.whl": b"two",
        "public_lib-2.0.tar.gz": b"two-source",
    }
}


@pytest.fixture
async def local(tmp_path: Path) -> LocalStore:
    local = make_local_store(tmp_path / "data")
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-core", "1.0")
    assert (await import_directory(dists, local.sessions, local.store)).ok
    return local


@pytest.fixture
def upstream() -> MemoryRepository:
    return MemoryRepository("pypi", PUBLIC)


@pytest.fixture
async def chain(local: LocalStore, upstream: MemoryRepository) -> AsyncIterator[YankRepository]:
    merged = PriorityRepository([LocalRepository(local.sessions, local.store), upstream])
    chain = YankRepository(merged, local.sessions)
    yield chain
    await chain.aclose()


async def change(local: LocalStore, *actions: tuple[str, str, str, str | None, str | None]) -> None:
    """Yank or unyank through the publish service, in one transaction, then let
    the event loop turn (the serial watcher checks once per turn)."""
    with local.sessions.begin() as session:
        for action, project, version, filename, reason in actions:
            if action == "yank":
                yank(session, ADMIN, project, version, filename, reason)
            else:
                unyank(session, ADMIN, project, version, filename)
    await anyio.lowlevel.checkpoint()


def yanked(page: ProjectDetail) -> dict[str, bool | str]:
    return {dist.filename: dist.yanked for dist in page.files}


async def bump_elsewhere(local: LocalStore) -> None:
    """An unrelated write, committed by another engine as another process would."""
    engine = create_database_engine(local.engine.url.render_as_string(hide_password=False))
    with session_factory_for(engine).begin() as session:
        bump_serial(session)
    engine.dispose()
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_a_page_without_overrides_is_the_upstream_object_itself(
    chain: YankRepository, upstream: MemoryRepository
) -> None:
    page = await chain.get_project("public-lib", ANONYMOUS)
    assert page is await upstream.get_project("public-lib", ANONYMOUS)


@pytest.mark.anyio
async def test_a_release_override_yanks_its_files_at_once(
    chain: YankRepository, local: LocalStore
) -> None:
    await chain.get_project("public-lib", ANONYMOUS)  # warm: the next read must still see it
    await change(local, ("yank", "public-lib", "2", None, "CVE-2026-1"))

    page = await chain.get_project("public-lib", ANONYMOUS)

    assert yanked(page) == {
        "public_lib-1.0-py3-none-any.whl": False,
        "public_lib-2.0-py3-none-any.whl": "CVE-2026-1",
        "public_lib-2.0.tar.gz": "CVE-2026-1",
    }
    assert (page.name, page.source) == ("public-lib", "pypi")


@pytest.mark.anyio
async def test_same_input_and_same_overrides_give_the_same_object(
    chain: YankRepository, local: LocalStore
) -> None:
    await change(local, ("yank", "public-lib", "2.0", None, None))
    first = await chain.get_project("public-lib", ANONYMOUS)
    await bump_elsewhere(local)  # the serial moves, the overrides stay the same

    assert await chain.get_project("public-lib", ANONYMOUS) is first
    assert yanked(first)["public_lib-2.0.tar.gz"] is True


@pytest.mark.anyio
async def test_unyank_gives_back_the_upstream_page(
    chain: YankRepository, local: LocalStore, upstream: MemoryRepository
) -> None:
    await change(local, ("yank", "public-lib", "1.0", "public_lib-1.0-py3-none-any.whl", "old"))
    assert yanked(await chain.get_project("public-lib", ANONYMOUS))[
        "public_lib-1.0-py3-none-any.whl"
    ] == ("old")
    await change(local, ("unyank", "public-lib", "1.0", "public_lib-1.0-py3-none-any.whl", None))

    page = await chain.get_project("public-lib", ANONYMOUS)

    assert page is await upstream.get_project("public-lib", ANONYMOUS)


@pytest.mark.anyio
async def test_in_house_pages_ignore_overrides(chain: YankRepository, local: LocalStore) -> None:
    before = await chain.get_project("acme-core", ANONYMOUS)
    snapshot = await chain._overrides.current()
    with local.sessions.begin() as session:  # a stray row, e.g. from before the name was in-house
        session.execute(
            insert(YankOverride).values(
                project_name="acme-core",
                version="1.0",
                reason="no",
                yanked_by="x",
                created_at=before.files[0].upload_time,
            )
        )
        bump_serial(session)
    await anyio.lowlevel.checkpoint()
    assert await chain._overrides.current() != snapshot  # the row was loaded...
    after = await chain.get_project("acme-core", ANONYMOUS)
    assert after is before  # ...and not applied
    assert after.files[0].yanked is False


@pytest.mark.anyio
async def test_in_house_yanks_come_from_the_local_store(
    chain: YankRepository, local: LocalStore
) -> None:
    await change(local, ("yank", "acme-core", "1.0", None, "bad"))
    page = await chain.get_project("acme-core", ANONYMOUS)
    assert yanked(page) == {"acme_core-1.0-py3-none-any.whl": "bad"}


@pytest.mark.anyio
async def test_a_yanked_file_can_still_be_downloaded(
    chain: YankRepository, local: LocalStore
) -> None:
    await change(
        local, ("yank", "public-lib", "2.0", None, None), ("yank", "acme-core", "1.0", None, None)
    )
    upstream_file = await chain.get_file("public-lib", "public_lib-2.0.tar.gz", ANONYMOUS)
    local_file = await chain.get_file("acme-core", "acme_core-1.0-py3-none-any.whl", ANONYMOUS)
    assert upstream_file.sha256 is not None
    assert isinstance(local_file, StoredFile)


@pytest.mark.anyio
async def test_overrides_are_read_once_per_serial(
    chain: YankRepository, local: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await change(local, ("yank", "public-lib", "2.0", None, None))
    await chain.get_project("public-lib", ANONYMOUS)
    loads = 0
    original = chain._load

    def counting() -> object:
        nonlocal loads
        loads += 1
        return original()

    monkeypatch.setattr(chain._overrides, "_load", counting)
    for _ in range(5):
        await chain.get_project("public-lib", ANONYMOUS)
    assert loads == 0
    await bump_elsewhere(local)
    await chain.get_project("public-lib", ANONYMOUS)
    assert loads == 1


def test_a_file_override_wins_and_an_upstream_reason_is_kept() -> None:
    page = ProjectDetail(
        "p",
        (
            DistFile("p-1.0-py3-none-any.whl", yanked="upstream says no"),
            DistFile("p-1.0.tar.gz"),
            DistFile("p-1.0.win32.exe"),  # no parsable version: only a file override can match
        ),
        source="pypi",
    )
    overrides = (
        Override("1", None, None),
        Override("1.0", "p-1.0.tar.gz", "the sdist is broken"),
    )

    result = apply_overrides(page, overrides)

    assert yanked(result) == {
        "p-1.0-py3-none-any.whl": "upstream says no",
        "p-1.0.tar.gz": "the sdist is broken",
        "p-1.0.win32.exe": False,
    }
    assert apply_overrides(page, (Override("9", None, "x"),)) is page
