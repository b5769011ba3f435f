"""Deletions: admins only; rows, then blobs, gone; filenames never usable again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import select

from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.freshness import PollingSerialWatcher
from packyard.db.governance import DeletedFile, ProjectRole
from packyard.db.models import File, Project
from packyard.db.serial import read_serial
from packyard.errors import (
    FileNotFound,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProjectNotFound,
)
from packyard.model import ANONYMOUS
from packyard.publish.accounts import add_user
from packyard.publish.deletions import delete, delete_file, delete_project_for_good
from packyard.publish.importer import import_directory, import_file
from packyard.publish.name_guard import allow_name
from packyard.publish.ownership import add_role
from packyard.repository.local import LocalRepository
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store

ADMIN = Identity(kind="cli", name="root", is_admin=True)
WHEEL_10 = "acme_core-1.0-py3-none-any.whl"
SDIST_10 = "acme_core-1.0.tar.gz"
WHEEL_11 = "acme_core-1.1-py3-none-any.whl"
ALL = sorted([WHEEL_10, SDIST_10, WHEEL_11])


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    directory = tmp_path / "dists"
    directory.mkdir()
    build_wheel(directory, "acme-core", "1.0")
    build_sdist(directory, "acme-core", "1.0")
    build_wheel(directory, "acme-core", "1.1")
    return directory


@pytest.fixture
async def local(tmp_path: Path, database_url: str, dists: Path) -> LocalStore:
    local = make_local_store(tmp_path / "data", database_url)
    assert (await import_directory(dists, local.sessions, local.store)).ok
    return local


def filenames(local: LocalStore) -> list[str]:
    with local.sessions() as session:
        return sorted(session.scalars(select(File.filename)))


def deleted(local: LocalStore) -> dict[str, tuple[str, str, str]]:
    with local.sessions() as session:
        rows = session.scalars(select(DeletedFile)).all()
        return {row.filename: (row.project_name, row.version, row.deleted_by) for row in rows}


def blob_names(local: LocalStore) -> set[str]:
    return {path.name for path in local.blob_files()}


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


def last_event(local: LocalStore) -> tuple[str, str, dict[str, object]]:
    with local.sessions() as session:
        row = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert row is not None
        return row.action, row.outcome, json.loads(row.detail)


@pytest.mark.anyio
async def test_deleting_a_release_removes_its_rows_and_blobs_and_keeps_its_filenames(
    local: LocalStore,
) -> None:
    before = serial(local)
    assert f"{WHEEL_10}.metadata" in blob_names(local)

    deletion = await delete(local.sessions, local.store, ADMIN, "Acme.Core", "1.0")

    assert deletion.filenames == (WHEEL_10, SDIST_10)
    assert filenames(local) == [WHEEL_11]
    assert deleted(local) == {
        WHEEL_10: ("acme-core", "1.0", "cli:root"),
        SDIST_10: ("acme-core", "1.0", "cli:root"),
    }
    assert blob_names(local) == {WHEEL_11, f"{WHEEL_11}.metadata"}
    assert serial(local) == before + 1
    assert last_event(local) == ("delete", "ok", {"files": [WHEEL_10, SDIST_10]})


@pytest.mark.anyio
async def test_deleting_one_file_leaves_the_rest_of_its_release(local: LocalStore) -> None:
    await delete(local.sessions, local.store, ADMIN, "acme-core", "1.0", SDIST_10)
    assert filenames(local) == sorted([WHEEL_10, WHEEL_11])
    assert list(deleted(local)) == [SDIST_10]
    assert SDIST_10 not in blob_names(local)


@pytest.mark.anyio
async def test_a_project_with_no_file_left_hides_nothing_unless_its_name_is_allowed(
    local: LocalStore,
) -> None:
    await delete(local.sessions, local.store, ADMIN, "acme-core", "1.0")
    await delete(local.sessions, local.store, ADMIN, "acme-core", "1.1")
    # Re-read the serial on every request: the check is about the rule, not the watcher.
    watcher = PollingSerialWatcher(local.engine, interval=0)
    repository = LocalRepository(local.sessions, local.store, watcher=watcher)
    try:
        # Not a project of this source: an upstream project of the name is served.
        with pytest.raises(ProjectNotFound):
            await repository.get_project("acme-core", ANONYMOUS)
        assert (await repository.list_projects(ANONYMOUS)).projects == ()

        def allow() -> None:
            with local.sessions.begin() as session:
                allow_name(session, ADMIN, "acme-core", "keep it in-house")

        await anyio.to_thread.run_sync(allow)  # as the server writes: off the event loop
        page = await repository.get_project("acme-core", ANONYMOUS)
        assert (page.files, page.versions) == ((), ())
        assert [e.name for e in (await repository.list_projects(ANONYMOUS)).projects] == [
            "acme-core"
        ]
    finally:
        watcher.close()
    with local.sessions() as session:  # the project itself, and its history, stay
        assert session.scalars(select(Project.name)).all() == ["acme-core"]


@pytest.mark.anyio
async def test_deleting_a_project_removes_its_files_roles_and_row_and_keeps_its_filenames(
    local: LocalStore, dists: Path
) -> None:
    with local.sessions.begin() as session:
        add_user(session, "alice", None, actor=ADMIN)
        session.flush()
        add_role(session, ADMIN, "acme-core", "owner", user="alice")
    before = serial(local)

    deletion = await delete_project_for_good(local.sessions, local.store, ADMIN, "Acme.Core")

    assert (deletion.project, deletion.version, sorted(deletion.filenames)) == (
        "acme-core",
        None,
        ALL,
    )
    assert filenames(local) == []
    assert sorted(deleted(local)) == ALL
    assert blob_names(local) == set()
    with local.sessions() as session:
        assert session.scalars(select(Project)).all() == []
        assert session.scalars(select(ProjectRole)).all() == []
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project-delete")
        ).one()
    assert (event.actor, event.project_name) == ("cli:root", "acme-core")
    assert json.loads(event.detail) == {"files": ALL, "roles": ["owner user alice"]}
    assert serial(local) > before
    # The filenames stay used for good, in a project created again under the name.
    result = await import_file(dists / WHEEL_10, local.sessions, local.store)
    assert result.outcome == "refused"
    assert "previously used by a file that has since been deleted" in result.message


@pytest.mark.anyio
async def test_only_admins_may_delete_a_project_and_a_refusal_is_audited(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        created = add_user(session, "bob", None, actor=ADMIN)
        session.flush()
        bob = Identity(kind="user", name="bob", user_id=created.id)
    with pytest.raises(PermissionDenied, match="isn't allowed to delete the project"):
        await delete_project_for_good(local.sessions, local.store, bob, "acme-core")
    with pytest.raises(ProjectNotFound):
        await delete_project_for_good(local.sessions, local.store, ADMIN, "no-such-project")
    assert filenames(local) == ALL
    with local.sessions() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project-delete")
        ).one()
    assert (refused.actor, refused.outcome, refused.project_name) == (
        "user:bob",
        "refused",
        "acme-core",
    )


@pytest.mark.anyio
async def test_a_deleted_filename_can_never_be_imported_again(
    local: LocalStore, dists: Path
) -> None:
    await delete(local.sessions, local.store, ADMIN, "acme-core", "1.0", WHEEL_10)

    result = await import_file(dists / WHEEL_10, local.sessions, local.store)

    assert result.outcome == "refused"
    assert "previously used by a file that has since been deleted" in result.message
    assert WHEEL_10 not in filenames(local)
    assert WHEEL_10 not in blob_names(local)  # the new copy was thrown away


@pytest.mark.anyio
async def test_only_admins_may_delete_and_a_refusal_is_audited(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        user = User(name="alice", is_admin=False, created_at=datetime.now(UTC))
        session.add(user)
        session.flush()
        alice = Identity(kind="user", name="alice", user_id=user.id)

    with pytest.raises(PermissionDenied, match="only an admin"):
        await delete(local.sessions, local.store, alice, "acme-core", "1.0")

    assert filenames(local) == ALL
    action, outcome, detail = last_event(local)
    assert (action, outcome) == ("delete", "refused")
    assert "only an admin" in str(detail["message"])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("project", "version", "filename", "error"),
    [
        ("public-lib", "1.0", None, ProjectNotFound),  # upstream files can only be yanked
        ("acme-core", "3.0", None, NotFound),
        ("acme-core", "1.0", "acme_core-3.0.tar.gz", FileNotFound),
        ("acme-core", "1.1", SDIST_10, InvalidRequest),
        ("acme-core", "one", None, InvalidRequest),
    ],
)
async def test_what_does_not_exist_here_cannot_be_deleted(
    local: LocalStore, project: str, version: str, filename: str | None, error: type[Exception]
) -> None:
    before = blob_names(local)
    with pytest.raises(error):
        await delete(local.sessions, local.store, ADMIN, project, version, filename)
    assert (filenames(local), blob_names(local), deleted(local)) == (
        ALL,
        before,
        {},
    )


@pytest.mark.anyio
async def test_blobs_stay_until_the_transaction_commits(local: LocalStore) -> None:
    """`delete_file` only stages the change: a rollback leaves rows and blobs as they were."""
    with local.sessions() as session:
        deletion = delete_file(session, ADMIN, "acme-core", WHEEL_11)
        session.rollback()
    assert len(deletion.blob_keys) == 2  # the wheel and its METADATA
    assert filenames(local) == ALL
    assert WHEEL_11 in blob_names(local)
