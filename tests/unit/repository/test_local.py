"""LocalRepository: pages from the database, files from the blob store, cached by serial."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Executable, event, update

from packyard.db.engine import create_database_engine, session_factory_for
from packyard.db.freshness import PollingSerialWatcher
from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.errors import FileNotFound, ProjectNotFound
from packyard.model import ANONYMOUS, SOURCE_LOCAL, ByteRange, ProjectEntry, StoredFile
from packyard.publish.importer import import_directory
from packyard.repository.local import LocalRepository
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    return make_local_store(tmp_path / "data", database_url)


@pytest.fixture
async def repository(local: LocalStore) -> AsyncIterator[LocalRepository]:
    # PostgreSQL has no cheap change signal, so the default watcher there re-reads
    # the serial every 0.5 s (db.freshness); re-reading it on every request keeps
    # the "seen at once" checks below about this class's caching, not that interval.
    watcher = None
    if local.engine.dialect.name != "sqlite":
        watcher = PollingSerialWatcher(local.engine, interval=0)
    repository = LocalRepository(local.sessions, local.store, watcher=watcher)
    yield repository
    await repository.aclose()


def move_into(directory: Path, *paths: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for path in paths:
        path.rename(directory / path.name)
    return directory


async def add(local: LocalStore, directory: Path, *paths: Path) -> None:
    """Import files, through the real importer, from a directory of their own."""
    report = await import_directory(move_into(directory, *paths), local.sessions, local.store)
    assert report.ok


def bump_in_another_process(local: LocalStore, change: Executable | None = None) -> None:
    """Commit through a separate engine, as another process would."""
    engine = create_database_engine(local.engine.url.render_as_string(hide_password=False))
    with session_factory_for(engine).begin() as session:
        if change is not None:
            session.execute(change)
        bump_serial(session)
    engine.dispose()


@pytest.mark.anyio
async def test_project_page_describes_every_file(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "Acme.Core", "1.10", requires_python=">=3.9")
    older = build_wheel(tmp_path, "acme-core", "1.9")
    sdist = build_sdist(tmp_path, "acme-core", "1.10")
    await add(local, tmp_path / "dists", wheel, older, sdist)
    wheel = tmp_path / "dists" / wheel.name

    page = await repository.get_project("acme-core", ANONYMOUS)

    assert (page.name, page.source, page.status.status) == ("acme-core", SOURCE_LOCAL, "active")
    assert page.versions == ("1.9", "1.10")
    assert [f.filename for f in page.files] == [
        "acme_core-1.9-py3-none-any.whl",
        "acme_core-1.10-py3-none-any.whl",
        "acme_core-1.10.tar.gz",
    ]
    dist = page.files[1]
    data = wheel.read_bytes()
    assert dict(dist.hashes) == {"sha256": hashlib.sha256(data).hexdigest()}
    assert (dist.size, dist.requires_python, dist.yanked, dist.url) == (
        len(data),
        ">=3.9",
        False,
        "",
    )
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("acme_core-1.10.dist-info/METADATA")
    assert dist.core_metadata == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert dist.upload_time is not None
    assert dist.upload_time.tzinfo is not None
    assert page.files[2].core_metadata is False  # sdists have no .metadata file


@pytest.mark.anyio
async def test_files_are_served_from_the_blob_store(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "acme", "1.0")
    data = wheel.read_bytes()
    await add(local, tmp_path / "dists", wheel)

    served = await repository.get_file("acme", wheel.name, ANONYMOUS)

    assert isinstance(served, StoredFile)
    assert (served.filename, served.size) == (wheel.name, len(data))
    assert served.sha256 == hashlib.sha256(data).hexdigest()
    body = b"".join([chunk async for chunk in served.store.read(served.key, None)])
    assert body == data
    part = b"".join([c async for c in served.store.read(served.key, ByteRange(10, 19))])
    assert part == data[10:20]


@pytest.mark.anyio
async def test_unknown_projects_and_files_are_not_found(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    await add(local, tmp_path / "dists", build_wheel(tmp_path, "acme", "1.0"))
    with pytest.raises(ProjectNotFound):
        await repository.get_project("requests", ANONYMOUS)
    with pytest.raises(ProjectNotFound):
        await repository.get_file("requests", "requests-1.0.tar.gz", ANONYMOUS)
    with pytest.raises(FileNotFound):
        await repository.get_file("acme", "acme-9.0.tar.gz", ANONYMOUS)
    with pytest.raises(FileNotFound):  # PEP 658 files are MetadataRepository's
        await repository.get_file("acme", "acme-1.0-py3-none-any.whl.metadata", ANONYMOUS)


@pytest.mark.anyio
async def test_project_list_uses_display_names(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    assert (await repository.list_projects(ANONYMOUS)).projects == ()
    wheel = build_wheel(tmp_path, "Zeta.Lib", "1.0")
    await add(local, tmp_path / "dists", wheel, build_sdist(tmp_path, "alpha", "1.0"))
    listing = await repository.list_projects(ANONYMOUS)
    assert listing.projects == (ProjectEntry("alpha"), ProjectEntry("Zeta.Lib"))
    assert await repository.list_projects(ANONYMOUS) is listing


@pytest.mark.anyio
async def test_the_same_page_object_comes_back_while_nothing_changes(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    await add(local, tmp_path / "one", build_wheel(tmp_path, "acme", "1.0"))
    await add(local, tmp_path / "two", build_wheel(tmp_path, "other", "1.0"))
    page = await repository.get_project("acme", ANONYMOUS)
    assert await repository.get_project("acme", ANONYMOUS) is page

    # A change elsewhere bumps the serial; this project's page is rebuilt,
    # comes out equal, and the very same object is kept.
    await add(local, tmp_path / "three", build_wheel(tmp_path, "other", "2.0"))
    assert await repository.get_project("acme", ANONYMOUS) is page

    await add(local, tmp_path / "four", build_wheel(tmp_path, "acme", "2.0"))
    changed = await repository.get_project("acme", ANONYMOUS)
    assert changed is not page
    assert changed.versions == ("1.0", "2.0")


@pytest.mark.anyio
async def test_another_process_write_is_seen_at_once(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    await add(local, tmp_path / "dists", build_wheel(tmp_path, "acme", "1.0"))
    page = await repository.get_project("acme", ANONYMOUS)

    bump_in_another_process(local, update(File).values(yanked=True, yanked_reason="broken"))

    yanked = await repository.get_project("acme", ANONYMOUS)
    assert yanked is not page
    assert yanked.files[0].yanked == "broken"


@pytest.mark.anyio
async def test_a_project_imported_by_another_process_appears_at_once(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    with pytest.raises(ProjectNotFound):
        await repository.get_project("late-comer", ANONYMOUS)
    other = LocalStore(
        local.engine,
        session_factory_for(create_database_engine(str(local.engine.url))),
        local.store,
    )
    await add(other, tmp_path / "dists", build_wheel(tmp_path, "late-comer", "0.1"))
    page = await repository.get_project("late-comer", ANONYMOUS)
    assert page.files[0].filename == "late_comer-0.1-py3-none-any.whl"


@pytest.mark.anyio
async def test_a_quarantined_project_keeps_its_page_but_offers_no_files(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "acme", "1.0")
    await add(local, tmp_path / "dists", wheel)
    bump_in_another_process(
        local, update(Project).values(status="quarantined", status_reason="malware")
    )
    page = await repository.get_project("acme", ANONYMOUS)
    assert (page.status.status, page.status.reason) == ("quarantined", "malware")
    assert (page.files, page.versions) == ((), ())
    with pytest.raises(FileNotFound):
        await repository.get_file("acme", wheel.name, ANONYMOUS)


@pytest.mark.anyio
async def test_concurrent_requests_after_a_change_share_one_reload(
    local: LocalStore, repository: LocalRepository, tmp_path: Path
) -> None:
    """A burst of requests (a client resolving in parallel) reloads the index once."""
    await add(local, tmp_path / "dists", build_wheel(tmp_path, "acme", "1.0"))
    listings: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM projects" in statement and "ORDER BY projects.name" in statement:
            listings.append(statement)

    event.listen(local.engine, "before_cursor_execute", count)
    try:
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(repository.list_projects, ANONYMOUS)
    finally:
        event.remove(local.engine, "before_cursor_execute", count)
    assert len(listings) == 1
