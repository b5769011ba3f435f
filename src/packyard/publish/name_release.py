"""Giving a name back to the upstream: the in-house project stops hiding the public one.

A name is in-house while a project of it exists here and either has files
or is on the allow-list (`repository/local.py`); the allow-list entry is an
admin's word that the name stays in-house even with no file left. Releasing
the name undoes both, in one audited transaction:

1. the in-house project, if any, is deleted as `deletions.delete_project`
   does (every file for good, its filenames never reused, its roles);
2. the name comes off the allow-list, so that a new upload of it must pass
   the name guard again (a public name is refused).

The upstream's project of that name is served on the next request, by every
replica (the serial is bumped). Admins only.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.db.governance import AllowedName
from packyard.db.models import Project
from packyard.db.serial import bump_serial
from packyard.errors import NotFound
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.deletions import Deletion, delete_project, purge_blobs
from packyard.publish.name_guard import check_name
from packyard.publish.yanks import refusals_recorded, require_admin
from packyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class Release:
    """What releasing `name` did: the project deleted (None: there was none)
    and whether the name was on the allow-list."""

    name: str
    deletion: Deletion | None
    was_allowed: bool

    @property
    def summary(self) -> str:
        """One sentence for a person."""
        done = []
        if self.deletion is not None:
            count = len(self.deletion.filenames)
            done.append(f"its in-house project deleted ({count} file{'s' * (count != 1)})")
        if self.was_allowed:
            done.append("taken off the allow-list")
        return f"Released '{self.name}' to the upstream: {' and '.join(done)}."


def release_name(
    session: Session, identity: Identity, name: str, *, origin: Origin = COMMAND_LINE
) -> Release:
    """Give `name` back to the upstream (see the module docstring), in the
    caller's transaction; the caller purges the deleted files' blobs after
    the commit (`purge_blobs`).

    Raises:
        InvalidRequest: the name is invalid.
        PermissionDenied: `identity` is not an admin.
        NotFound: no in-house project has the name and it is not on the allow-list.
    """
    normalised = check_name(name)
    require_admin(session, identity, "release the name", normalised)
    project = session.scalar(select(Project.id).where(Project.name == normalised))
    allowed = session.get(AllowedName, normalised)
    if project is None and allowed is None:
        raise NotFound(
            f"The name '{normalised}' is not in-house: no project has it and it is not on "
            "the allow-list, so there is nothing to release."
        )
    deletion = None
    if project is not None:
        deletion = delete_project(session, identity, normalised, origin=origin)
    if allowed is not None:
        session.delete(allowed)
    bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action="name-release",
        origin=origin,
        project=normalised,
        files=list(deletion.filenames) if deletion is not None else [],
        was_allowed=allowed is not None,
    )
    return Release(normalised, deletion, allowed is not None)


async def release_name_for_good(
    sessions: sessionmaker[Session],
    store: BlobStore,
    identity: Identity,
    name: str,
    *,
    origin: Origin = COMMAND_LINE,
) -> Release:
    """`release_name` in a transaction of its own, then the deleted files'
    blobs purged; a refusal is audited.

    Raises:
        everything `release_name` raises, and `purge_blobs`' OSError.
    """

    def commit() -> Release:
        refusals = refusals_recorded(
            sessions, identity, "name-release", project=name, origin=origin
        )
        with refusals, sessions.begin() as session:
            return release_name(session, identity, name, origin=origin)

    release = await anyio.to_thread.run_sync(commit)
    if release.deletion is not None:
        await purge_blobs(sessions, store, release.deletion)
    return release
