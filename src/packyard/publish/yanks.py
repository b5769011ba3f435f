"""Yanking and un-yanking releases and files (PEP 592), with who may do it.

- An in-house project's files carry their yank in `files.yanked` and
  `files.yanked_reason`; yanking a release yanks every file of it. An admin,
  or an owner or maintainer of the project, may do it.
- A project packyard does not hold (an upstream's) gets a `YankOverride` row,
  for a release (no filename) or one file, which `repository/yank.py` applies
  to the upstream's page. Only an admin may: such a yank changes what every
  user of the site installs of a public project. The row is recorded whether
  or not the upstream lists that release yet; it applies as soon as it does.

Each function works in the caller's transaction: it writes the change, an
audit event (`publish.audit.record`) and a serial bump (`db.serial`), and the
caller commits them together, so every process serving `/simple/` sees the
yank on its next request. A refused request raises before anything is
written; `refusals_recorded` records the refusal in a transaction of its own.

Yanked files stay downloadable: installers skip them unless pinned with `==`
or `===` (STANDARDS §1.20).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.auth.permissions import active_user, is_admin, roles_of
from packyard.db.governance import YankOverride
from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.errors import FileNotFound, InvalidRequest, NotFound, PermissionDenied
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.publish.name_guard import check_name
from packyard.repository.local import owns_name

# Who may yank an in-house project's files, besides admins.
MAINTAINER_ROLES = frozenset({"owner", "maintainer"})


@dataclass(frozen=True, slots=True)
class YankResult:
    """What a yank or unyank changed.

    `filenames`: the in-house files whose state changed (empty when they were
    already in that state, or for an override). `override`: the change was a
    `YankOverride` of an upstream project.
    """

    project: str
    version: str
    filename: str | None
    filenames: tuple[str, ...]
    override: bool


def yank(
    session: Session,
    identity: Identity,
    project: str,
    version: str,
    filename: str | None = None,
    reason: str | None = None,
    *,
    origin: Origin = COMMAND_LINE,
) -> YankResult:
    """Yank the release `version` of `project`, or only its file `filename`.

    Yanking an already yanked file again replaces its reason.

    Raises:
        InvalidRequest: an invalid project name or version, or `filename`
            belongs to another version.
        PermissionDenied: see the module docstring.
        NotFound: the in-house project has no such release.
        FileNotFound: the in-house project has no such file.
    """
    name, version = _normalise(project, version)
    reason = (reason or "").strip() or None
    row = _in_house(session, name)
    if row is None:
        return _add_override(session, identity, name, version, filename, reason, origin)
    require_maintainer(session, identity, row, "yank")
    files = find_files(session, row, version, filename)
    changed = [
        dist.filename for dist in files if (dist.yanked, dist.yanked_reason) != (True, reason)
    ]
    for dist in files:
        dist.yanked, dist.yanked_reason = True, reason
    result = YankResult(name, version, filename, (*changed,), False)
    return _finish(session, identity, "yank", result, origin, reason=reason)


def unyank(
    session: Session,
    identity: Identity,
    project: str,
    version: str,
    filename: str | None = None,
    *,
    origin: Origin = COMMAND_LINE,
) -> YankResult:
    """Undo a yank of the release `version` of `project`, or of its file `filename`.

    For an upstream project this removes this site's overrides (of the whole
    release and of its files, or of the one file); the upstream's own yanks
    stay, as a mirror must keep them (STANDARDS §1.13).

    Raises:
        InvalidRequest: an invalid name or version; `filename` belongs to
            another version; or only `filename` is named while this site
            yanked the whole upstream release.
        PermissionDenied: see the module docstring.
        NotFound: no such in-house release, or no override to remove.
        FileNotFound: the in-house project has no such file.
    """
    name, version = _normalise(project, version)
    row = _in_house(session, name)
    if row is None:
        return _remove_overrides(session, identity, name, version, filename, origin)
    require_maintainer(session, identity, row, "unyank")
    files = find_files(session, row, version, filename)
    changed = [dist.filename for dist in files if dist.yanked]
    for dist in files:
        dist.yanked, dist.yanked_reason = False, None
    result = YankResult(name, version, filename, (*changed,), False)
    return _finish(session, identity, "unyank", result, origin)


def find_files(
    session: Session, project: Project, version: str, filename: str | None
) -> Sequence[File]:
    """The files of release `version` (compared as PEP 440 versions), or the one `filename`.

    Raises:
        NotFound: the project has no file of that version.
        FileNotFound: the project has no file `filename`.
        InvalidRequest: `filename` is a file of another version.
    """
    rows = session.scalars(select(File).where(File.project_id == project.id)).all()
    wanted = Version(version)
    if filename is not None:
        found = [row for row in rows if row.filename == filename]
        if not found:
            raise FileNotFound(project.name, filename)
        if Version(found[0].version) != wanted:
            raise InvalidRequest(
                f"{filename!r} is a file of version {found[0].version}, not of {version}."
            )
        return found
    found = [row for row in rows if Version(row.version) == wanted]
    if not found:
        raise NotFound(f"Project {project.name!r} has no release {version!r}.")
    return found


def require_maintainer(session: Session, identity: Identity, project: Project, action: str) -> None:
    """Pass if `identity` may yank `project`'s files: an admin, or an owner or
    maintainer (directly or through a group), whose credential covers the project.

    Raises:
        PermissionDenied: anyone else, a disabled user, or a credential limited
            to other projects.
    """
    user = active_user(session, identity)
    if identity.may_touch(project.name):
        if is_admin(identity, user):
            return
        if user is not None and roles_of(session, user.id, project.id) & MAINTAINER_ROLES:
            return
    raise PermissionDenied(
        f"'{identity.name}' isn't allowed to {action} files of project '{project.name}': "
        "only its owners and maintainers, and admins, are."
    )


def _in_house(session: Session, name: str) -> Project | None:
    """The in-house project `name` if it holds its name here (`owns_name`); None
    when the name's page is the upstream's, which an empty project does not hide."""
    return session.scalar(select(Project).where(Project.name == name, owns_name()))


def require_admin(session: Session, identity: Identity, action: str, project: str) -> None:
    """Pass if `identity` is an admin (as stored now) whose credential covers `project`.

    Raises:
        PermissionDenied: anyone else, or a disabled user.
    """
    user = active_user(session, identity)
    if not (identity.may_touch(project) and is_admin(identity, user)):
        raise PermissionDenied(
            f"'{identity.name}' isn't allowed to {action} '{project}': only an admin is."
        )


@contextmanager
def refusals_recorded(
    sessions: sessionmaker[Session],
    identity: Identity,
    action: str,
    *,
    project: str | None = None,
    version: str | None = None,
    filename: str | None = None,
    origin: Origin = COMMAND_LINE,
) -> Iterator[None]:
    """Record a PermissionDenied raised inside as a `refused` audit event, in a
    transaction of its own (the refused change itself is rolled back), and re-raise it."""
    try:
        yield
    except PermissionDenied as exc:
        with sessions.begin() as session:
            record(
                session,
                actor=identity.actor,
                action=action,
                outcome="refused",
                origin=origin,
                project=project,
                version=version,
                filename=filename,
                message=exc.message,
            )
        raise


def _normalise(project: str, version: str) -> tuple[str, str]:
    """The normalised project name and version.

    Raises:
        InvalidRequest: the name or the version is not valid.
    """
    return check_name(project), normalise_version(version)


def normalise_version(version: str) -> str:
    """The PEP 440 normal form of `version` (`2.0.0rc1` for `2.0.0-RC1`).

    Raises:
        InvalidRequest: not a valid version.
    """
    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidRequest(f"{version!r} is not a valid version (PEP 440).") from None


def _add_override(
    session: Session,
    identity: Identity,
    name: str,
    version: str,
    filename: str | None,
    reason: str | None,
    origin: Origin,
) -> YankResult:
    require_admin(session, identity, "yank files of the upstream project", name)
    existing = next(
        (row for row in _release_overrides(session, name, version) if row.filename == filename),
        None,
    )
    if existing is None:
        existing = YankOverride(project_name=name, version=version, filename=filename)
        session.add(existing)
    existing.reason = reason
    existing.yanked_by = identity.actor
    existing.created_at = datetime.now(UTC)
    result = YankResult(name, version, filename, (), True)
    return _finish(session, identity, "yank", result, origin, reason=reason, changed=True)


def _remove_overrides(
    session: Session,
    identity: Identity,
    name: str,
    version: str,
    filename: str | None,
    origin: Origin,
) -> YankResult:
    require_admin(session, identity, "unyank files of the upstream project", name)
    rows = _release_overrides(session, name, version)
    if filename is not None:
        if any(row.filename is None for row in rows):
            raise InvalidRequest(
                f"The whole release {name} {version} is yanked here: unyank the release."
            )
        rows = [row for row in rows if row.filename == filename]
    if not rows:
        target = filename or f"{name} {version}"
        raise NotFound(f"There is no yank of {target!r} made here to undo.")
    for row in rows:
        session.delete(row)
    result = YankResult(name, version, filename, (), True)
    return _finish(session, identity, "unyank", result, origin, changed=True)


def _release_overrides(session: Session, name: str, version: str) -> list[YankOverride]:
    """The overrides of `name`'s release `version`, versions compared as PEP 440
    versions (`2` is `2.0`), as `repository/yank.py` applies them."""
    wanted = Version(version)
    rows = session.scalars(select(YankOverride).where(YankOverride.project_name == name))
    return [row for row in rows if Version(row.version) == wanted]


def _finish(
    session: Session,
    identity: Identity,
    action: str,
    result: YankResult,
    origin: Origin,
    *,
    changed: bool = False,
    reason: str | None = None,
) -> YankResult:
    """Bump the serial if anything changed, and record the audit event."""
    if changed or result.filenames:
        bump_serial(session)
    record(
        session,
        actor=identity.actor,
        action=action,
        origin=origin,
        project=result.project,
        version=result.version,
        filename=result.filename,
        override=result.override,
        files=list(result.filenames),
        reason=reason,
    )
    return result
