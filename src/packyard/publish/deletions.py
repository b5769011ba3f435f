"""Deleting in-house files and releases, for good (admins only).

A deletion removes the file rows, records each filename in `deleted_files`
so that it can never be uploaded or imported again (as on PyPI: a filename
names one set of bytes forever, or caches and lock files would lie), bumps
the serial and writes an audit event, all in the caller's transaction. The
blobs (the file and its METADATA) are removed only after that commit, by
`purge_blobs`: a crash in between leaves an orphan blob, never a row whose
blob is gone. `delete` does both steps.

The project row stays when its last file goes (its owners and its allow-list
entry too), but an in-house project with no files hides the upstream project
of its name only if an admin allowed the name (`repository/local.py`).
`delete_project` removes the project itself: every file (their filenames
kept here for good), its roles and its row; the name is then no longer
in-house, and a new upload of it is a new project that passes the name
guard again. Yank rather than delete where you can: a yank keeps `==` pins
working (PEP 592).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy import delete as delete_rows
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.db.governance import DeletedFile, ProjectRole
from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.errors import FileNotFound, InvalidRequest, ProjectNotFound
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.name_guard import check_name
from packyard.publish.ownership import list_roles
from packyard.publish.yanks import (
    find_files,
    normalise_version,
    refusals_recorded,
    require_admin,
)
from packyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class Deletion:
    """What was deleted: the files, and the blob keys to remove after the commit.
    `version` is None when the whole project was deleted."""

    project: str
    version: str | None
    filenames: tuple[str, ...]
    blob_keys: tuple[str, ...]


def delete_file(
    session: Session,
    identity: Identity,
    project: str,
    filename: str,
    *,
    version: str | None = None,
    origin: Origin = COMMAND_LINE,
) -> Deletion:
    """Delete one file of an in-house project (see the module docstring); when
    `version` is given, the file must be of that release.

    Raises:
        InvalidRequest: the project name or version is invalid, or the file is
            of another version.
        PermissionDenied: `identity` is not an admin.
        ProjectNotFound: no such in-house project (upstream files can only be yanked).
        FileNotFound: the project has no such file.
    """
    name = check_name(project)
    require_admin(session, identity, "delete files of", name)
    row = _project(session, name)
    if version is None:
        version = session.scalar(
            select(File.version).where(File.project_id == row.id, File.filename == filename)
        )
        if version is None:
            raise FileNotFound(name, filename)
    files = find_files(session, row, normalise_version(version), filename)
    return _delete(session, identity, row, files, origin)


def delete_release(
    session: Session,
    identity: Identity,
    project: str,
    version: str,
    *,
    origin: Origin = COMMAND_LINE,
) -> Deletion:
    """Delete every file of the release `version` of an in-house project.

    Raises:
        InvalidRequest: the project name or the version is invalid.
        PermissionDenied: `identity` is not an admin.
        ProjectNotFound: no such in-house project.
        NotFound: the project has no such release.
    """
    name = check_name(project)
    require_admin(session, identity, "delete releases of", name)
    row = _project(session, name)
    files = find_files(session, row, normalise_version(version), None)
    return _delete(session, identity, row, files, origin)


def delete_project(
    session: Session, identity: Identity, project: str, *, origin: Origin = COMMAND_LINE
) -> Deletion:
    """Delete an in-house project (see the module docstring): every file for
    good, its owners and maintainers, and the project.

    Raises:
        InvalidRequest: the project name is invalid.
        PermissionDenied: `identity` is not an admin.
        ProjectNotFound: no such in-house project.
    """
    name = check_name(project)
    require_admin(session, identity, "delete the project", name)
    row = _project(session, name)
    files = session.scalars(select(File).where(File.project_id == row.id)).all()
    filenames, keys = _forget(session, identity, row, files)
    roles = [f"{entry.role} {entry.kind} {entry.name}" for entry in list_roles(session, name)]
    session.execute(delete_rows(ProjectRole).where(ProjectRole.project_id == row.id))
    session.delete(row)
    bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="project-delete",
        origin=origin,
        project=name,
        files=list(filenames),
        roles=roles,
    )
    return Deletion(name, None, filenames, keys)


async def delete_project_for_good(
    sessions: sessionmaker[Session],
    store: BlobStore,
    identity: Identity,
    project: str,
    *,
    origin: Origin = COMMAND_LINE,
) -> Deletion:
    """`delete_project` in a transaction of its own, then its blobs purged; a
    refusal is audited.

    Raises:
        everything `delete_project` raises, and `purge_blobs`' OSError.
    """

    def commit() -> Deletion:
        refusals = refusals_recorded(
            sessions, identity, "project-delete", project=project, origin=origin
        )
        with refusals, sessions.begin() as session:
            return delete_project(session, identity, project, origin=origin)

    deletion = await anyio.to_thread.run_sync(commit)
    await purge_blobs(sessions, store, deletion)
    return deletion


async def purge_blobs(
    sessions: sessionmaker[Session], store: BlobStore, deletion: Deletion
) -> None:
    """Remove the blobs of a committed deletion that no file row uses any more.

    Raises:
        OSError: a blob exists but could not be removed (the rows are already
            gone: it is an orphan, never served).
    """
    for key in deletion.blob_keys:
        if not await anyio.to_thread.run_sync(_is_referenced, sessions, key):
            await store.delete(key)


async def delete(
    sessions: sessionmaker[Session],
    store: BlobStore,
    identity: Identity,
    project: str,
    version: str,
    filename: str | None = None,
    *,
    origin: Origin = COMMAND_LINE,
) -> Deletion:
    """Delete a release, or its one file `filename`: commit, then purge the blobs.
    A refusal is audited.

    Raises:
        everything `delete_file` and `delete_release` raise, and `purge_blobs`'s OSError.
    """

    def commit() -> Deletion:
        where = {"project": project, "version": version, "filename": filename}
        refusals = refusals_recorded(sessions, identity, "delete", origin=origin, **where)
        with refusals, sessions.begin() as session:
            if filename is None:
                return delete_release(session, identity, project, version, origin=origin)
            return delete_file(session, identity, project, filename, version=version, origin=origin)

    deletion = await anyio.to_thread.run_sync(commit)
    await purge_blobs(sessions, store, deletion)
    return deletion


def refuse_deleted_filename(session: Session, filename: str) -> None:
    """For every write path, before a new file row is added (in its transaction).

    Raises:
        InvalidRequest: `filename` was deleted once; it names those bytes
            forever (as on PyPI, STANDARDS §2.14).
    """
    if session.get(DeletedFile, filename) is not None:
        raise InvalidRequest(
            f"The filename {filename!r} has already been used by a file that was deleted; "
            "use a different version."
        )


def _project(session: Session, name: str) -> Project:
    row = session.scalar(select(Project).where(Project.name == name))
    if row is None:
        raise ProjectNotFound(name)
    return row


def _forget(
    session: Session, identity: Identity, project: Project, rows: Sequence[File]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Delete the file rows, keeping each filename in `deleted_files` for good:
    (the filenames, the blob keys to purge after the commit)."""
    now = datetime.now(UTC)
    keys: list[str] = []
    for row in rows:
        session.add(
            DeletedFile(
                filename=row.filename,
                project_name=project.name,
                version=row.version,
                sha256=row.sha256,
                deleted_by=identity.actor,
                deleted_at=now,
            )
        )
        keys += [key for key in (row.blob_key, row.metadata_blob_key) if key]
        session.delete(row)
    return tuple(row.filename for row in rows), tuple(keys)


def _delete(
    session: Session, identity: Identity, project: Project, rows: Sequence[File], origin: Origin
) -> Deletion:
    filenames, keys = _forget(session, identity, project, rows)
    bump_serial(session)
    version = rows[0].version
    record(
        session,
        actor=identity.actor,
        action="delete",
        origin=origin,
        project=project.name,
        version=version,
        filename=filenames[0] if len(filenames) == 1 else None,
        files=list(filenames),
    )
    return Deletion(project.name, version, filenames, keys)


def _is_referenced(sessions: sessionmaker[Session], key: str) -> bool:
    try:
        with sessions() as session:
            found = session.scalar(
                select(File.id).where(or_(File.blob_key == key, File.metadata_blob_key == key))
            )
    except SQLAlchemyError:
        return True  # can't tell: keep it (an orphan is never served)
    return found is not None
