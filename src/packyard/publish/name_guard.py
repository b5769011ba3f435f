"""The name guard: may a NEW in-house project take this name? (STANDARDS §2.10)

Checked in this order, each refusal a 400 (`InvalidRequest`):

1. the name is valid (name-normalization spec) and at most `MAX_NAME_LENGTH`
   characters;
2. it is not a standard-library module name (as PyPI: normalised, with
   leading and trailing `._-` stripped, including modules removed from
   recent Pythons);
3. unless an admin allowed it (`allowed_names`, `packyard name allow`):
   a. no configured upstream has a project of that normalised name: an
      in-house project would own the name and hide the public one
      (`PriorityRepository`), which breaks every user of the public package;
   b. its look-alike fold (`ultranormalize`, PyPI's "too similar" rule:
      strip `._-`, `l`/`L`/`i`/`I` → `1`, `o`/`O` → `0`, lowercase) matches
      no in-house project and no name in an upstream's project list.

What 3b covers, honestly: an upstream cannot be asked for every look-alike,
so look-alikes of upstream names are found in the upstream's project list
(`list_projects`, which `UpstreamRepository` keeps and revalidates with ETags;
its fold is computed once per list object). An upstream that serves no
project list is refused with its error rather than skipped; pass
`fold_upstream_lists=False` to check only exact names upstream (3a) and
look-alikes of in-house names.

An upstream that is down fails the check (`UpstreamUnavailable`, 503): the
name cannot be proven free, and a wrongly created project would shadow a
public one for every user. The uploader can retry once it is back.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import anyio.to_thread
from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.auth.permissions import active_user, is_admin
from packyard.db.governance import AllowedName
from packyard.db.models import Project
from packyard.db.serial import bump_serial
from packyard.dists.filenames import MAX_NAME_LENGTH
from packyard.errors import InvalidRequest, NotFound, PermissionDenied, ProjectNotFound
from packyard.model import ANONYMOUS, ProjectList
from packyard.publish.audit import COMMAND_LINE, Origin, record
from packyard.repository.base import Repository

# Name-normalization spec; ASCII-only so IGNORECASE can't let the Kelvin sign pass as "k".
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)
# Removed by PEP 594 (3.13) and PEP 632 / 3.12, so absent from newer
# `sys.stdlib_module_names`, but still importable on the Pythons users run.
REMOVED_STDLIB_MODULES = frozenset(
    {"aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt"}
    | {"distutils", "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib"}
    | {"ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib"}
)
STDLIB_NAMES = frozenset(
    canonicalize_name(module.strip("-_."))
    for module in (*sys.stdlib_module_names, *REMOVED_STDLIB_MODULES)
)
_FOLD = str.maketrans("lLiIoO", "111100", "._-")


def check_name(name: str) -> str:
    """The normalised form of a valid project name.

    Raises:
        InvalidRequest: "The name {name!r} is invalid." (STANDARDS §2.10), or
            the name is longer than MAX_NAME_LENGTH.
    """
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"The name is too long: project names are at most {MAX_NAME_LENGTH} characters."
        )
    if not _VALID_NAME.fullmatch(name):
        raise InvalidRequest(f"The name {name!r} is invalid.")
    return canonicalize_name(name)


def check_new_name(name: str) -> str:
    """Steps 1 and 2: the normalised form of a valid name that is not a
    standard-library module's.

    Raises:
        InvalidRequest: invalid, too long, or a standard-library name.
    """
    normalised = check_name(name)
    if normalised in STDLIB_NAMES:
        raise InvalidRequest(
            f"The name {name!r} isn't allowed (conflict with Python Standard Library module name)."
        )
    return normalised


def ultranormalize(name: str) -> str:
    """PyPI's look-alike fold: strip `._-`, map l/L/i/I to 1 and o/O to 0, lowercase."""
    return name.translate(_FOLD).lower()


class NameGuard:
    """Decides whether a new in-house project may be created (see the module docstring)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        upstreams: Sequence[Repository],
        *,
        fold_upstream_lists: bool = True,
    ) -> None:
        """`upstreams`: the upstream sources of the chain, in priority order; each
        is named in messages by its `label` attribute when it has one."""
        self._sessions = session_factory
        self._upstreams = tuple(upstreams)
        self._fold_lists = fold_upstream_lists
        self._folded: dict[int, tuple[ProjectList, Mapping[str, str]]] = {}

    async def check(self, name: str) -> None:
        """Return if `name` may become a new in-house project, else raise.

        Raises:
            InvalidRequest: invalid, a standard-library name, used or imitated by
                a public project on an upstream, or too similar to an in-house project.
            UpstreamUnavailable: an upstream could not be asked (503).
            UpstreamError: an upstream answered with something unusable (502).
            sqlalchemy.exc.SQLAlchemyError: the database failed.
        """
        check_new_name(name)
        await self.check_public(name)

    async def check_public(self, name: str) -> None:
        """Step 3 alone, for a name that passed `check_new_name`: return if it is
        allowed or no project, here or upstream, has or resembles it, else raise.

        Raises:
            InvalidRequest, UpstreamUnavailable, UpstreamError, SQLAlchemyError:
                as `check`.
        """
        normalised = canonicalize_name(name)
        if await anyio.to_thread.run_sync(self._is_allowed, normalised):
            return
        folded = ultranormalize(normalised)
        similar = await anyio.to_thread.run_sync(self._similar_local, normalised, folded)
        if similar is not None:
            raise InvalidRequest(
                f"The name {name!r} is too similar to an existing project ({similar!r})."
            )
        for upstream in self._upstreams:
            await self._check_upstream(upstream, name, normalised, folded)

    async def _check_upstream(
        self, upstream: Repository, name: str, normalised: str, folded: str
    ) -> None:
        label = getattr(upstream, "label", None) or type(upstream).__name__
        allow = f"An administrator can allow it with `packyard name allow {name}`."
        try:
            await upstream.get_project(normalised, ANONYMOUS)
        except ProjectNotFound:
            pass
        else:
            raise InvalidRequest(
                f"The name {name!r} is already used by a public project on {label}: "
                f"an in-house package of that name would shadow it. {allow}"
            )
        if not self._fold_lists:
            return
        listing = await upstream.list_projects(ANONYMOUS)
        public = (await self._folded_names(upstream, listing)).get(folded)
        if public is not None and canonicalize_name(public) != normalised:
            raise InvalidRequest(
                f"The name {name!r} is too similar to {public!r}, a public project on "
                f"{label}: an in-house package of that name could be mistaken for it. {allow}"
            )

    async def _folded_names(self, upstream: Repository, listing: ProjectList) -> Mapping[str, str]:
        """folded name -> name, built once per list object (a list can be large)."""
        known = self._folded.get(id(upstream))
        if known is not None and known[0] is listing:
            return known[1]
        folded = await anyio.to_thread.run_sync(_fold_list, listing)
        self._folded[id(upstream)] = (listing, folded)
        return folded

    def _is_allowed(self, normalised: str) -> bool:
        with self._sessions() as session:
            return session.get(AllowedName, normalised) is not None

    def _similar_local(self, normalised: str, folded: str) -> str | None:
        with self._sessions() as session:
            names = session.scalars(select(Project.name)).all()
        return next(
            (other for other in names if other != normalised and ultranormalize(other) == folded),
            None,
        )


def _fold_list(listing: ProjectList) -> Mapping[str, str]:
    folded: dict[str, str] = {}
    for entry in listing.projects:
        folded.setdefault(ultranormalize(entry.name), entry.name)
    return folded


# --- the allow-list ------------------------------------------------------------


def allow_name(
    session: Session,
    identity: Identity,
    name: str,
    reason: str | None = None,
    *,
    origin: Origin = COMMAND_LINE,
) -> AllowedName:
    """Let a new in-house project take `name` despite a public project using or
    resembling it (in the caller's transaction, audited). Allowing it again
    replaces the reason. An in-house project of an allowed name keeps hiding
    the upstream project of that name even when it has no file left
    (`repository/local.py`).

    Raises:
        InvalidRequest: the name is invalid.
        PermissionDenied: `identity` is not an admin.
    """
    normalised = _admin_name(session, identity, name, "allow")
    row = session.get(AllowedName, normalised)
    if row is None:
        row = AllowedName(name=normalised)
        session.add(row)
    row.reason = (reason or "").strip() or None
    row.allowed_by = identity.actor
    row.created_at = datetime.now(UTC)
    bump_serial(session)  # an allowed name's empty project hides the upstream one
    record(
        session,
        actor=identity.actor,
        action="name-allow",
        origin=origin,
        project=normalised,
        reason=row.reason,
    )
    return row


def disallow_name(
    session: Session, identity: Identity, name: str, *, origin: Origin = COMMAND_LINE
) -> None:
    """Remove `name` from the allow-list (in the caller's transaction, audited).
    A project already created under it stays (and hides the upstream project
    of the name while it has files).

    Raises:
        InvalidRequest: the name is invalid.
        PermissionDenied: `identity` is not an admin.
        NotFound: the name is not on the allow-list.
    """
    normalised = _admin_name(session, identity, name, "disallow")
    row = session.get(AllowedName, normalised)
    if row is None:
        raise NotFound(f"The name {normalised!r} is not on the allow-list.")
    session.delete(row)
    bump_serial(session)
    record(session, actor=identity.actor, action="name-disallow", origin=origin, project=normalised)


def allowed_names(session: Session) -> Sequence[AllowedName]:
    """Every allowed name, sorted by name."""
    return session.scalars(select(AllowedName).order_by(AllowedName.name)).all()


def _admin_name(session: Session, identity: Identity, name: str, action: str) -> str:
    normalised = check_name(name)
    if not is_admin(identity, active_user(session, identity)):
        raise PermissionDenied(
            f"{identity.actor} isn't allowed to {action} names: only an administrator is."
        )
    return normalised
