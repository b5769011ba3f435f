"""Who looks after an in-house project, and who uploaded each of its files.

A project page shows, as PyPI does, a Maintainers section (here: packyard's
owners and maintainers, users and groups, from `publish.ownership.list_roles`)
and, per file, who uploaded it and with what (`uploaded via twine/6.1.0`) and
every hash PyPI shows (SHA256, MD5, BLAKE2b-256).

The `files` table keeps the hashes but not the uploader: that is in the audit
trail, whose `upload` and `import` events name the file, the actor and the
client's user agent. Everything a page needs is read in one session and four
queries (two for the roles, one for the files, one for the events), however many
files the project has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.audit import AuditEvent
from packyard.db.models import File, Project
from packyard.errors import ProjectNotFound
from packyard.publish.ownership import list_roles

# The audit actions that add a file to an in-house project.
_ADDING = ("upload", "import")
# A user agent longer than this is cut on the page (a client may send anything).
MAX_USER_AGENT = 120


@dataclass(frozen=True, slots=True)
class Role:
    """An owner or maintainer: `kind` is `user` or `group`."""

    role: str  # "owner" or "maintainer"
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Upload:
    """What the store and the audit trail know of one in-house file."""

    md5: str | None = None
    blake2_256: str | None = None
    uploaded_by: str | None = None  # `uploader_name(actor)`: "alice", "CI gitlab.example/app"
    uploaded_via: str | None = None  # the client's user agent, e.g. "twine/6.1.0 ..."


@dataclass(frozen=True, slots=True)
class ProjectPeople:
    roles: tuple[Role, ...]
    uploads: Mapping[str, Upload]  # by filename


NO_PEOPLE = ProjectPeople((), {})


def uploader_name(actor: str) -> str:
    """How a page names an audit actor: `user:alice` and `token:alice/pky_ab12` are
    "alice", `ci:gitlab.example/group/app` is "CI gitlab.example/group/app",
    `cli:root` is "root (command line)"; anything else is shown as it is."""
    kind, _, rest = actor.partition(":")
    if not rest:
        return actor
    if kind == "user":
        return rest
    if kind == "token":
        return rest.rpartition("/")[0] or rest
    if kind == "ci":
        return f"CI {rest}"
    if kind == "cli":
        return f"{rest} (command line)"
    return actor


def short_agent(agent: str | None) -> str | None:
    """The user agent as a page shows it: stripped, at most MAX_USER_AGENT characters."""
    if agent is None or not agent.strip():
        return None
    agent = " ".join(agent.split())
    return agent if len(agent) <= MAX_USER_AGENT else agent[: MAX_USER_AGENT - 1] + "…"


class PeopleRecords:
    """Reads the roles and the file records of in-house projects.
    Synchronous SQLAlchemy: call from a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def project(self, name: str) -> ProjectPeople:
        """The roles and uploads of in-house project `name` (normalised);
        `NO_PEOPLE` when it is not in-house."""
        with self._sessions() as session:
            try:
                roles = list_roles(session, name)
            except ProjectNotFound:
                return NO_PEOPLE
            files = session.execute(
                select(File.filename, File.md5, File.blake2_256)
                .join(Project, Project.id == File.project_id)
                .where(Project.name == name)
            ).all()
            events = session.execute(
                select(AuditEvent.filename, AuditEvent.actor, AuditEvent.user_agent)
                .where(
                    AuditEvent.project_name == name,
                    AuditEvent.action.in_(_ADDING),
                    AuditEvent.outcome == "ok",
                    AuditEvent.filename.is_not(None),
                )
                .order_by(AuditEvent.id)
            ).all()
        # The last event of a file wins (a file deleted and added again).
        who = {filename: (actor, agent) for filename, actor, agent in events}
        uploads: dict[str, Upload] = {}
        for filename, md5, blake2_256 in files:
            actor, agent = who.get(filename, (None, None))
            uploads[filename] = Upload(
                md5=md5,
                blake2_256=blake2_256,
                uploaded_by=uploader_name(actor) if actor else None,
                uploaded_via=short_agent(agent),
            )
        return ProjectPeople(
            tuple(Role(entry.role, entry.kind, entry.name) for entry in roles), uploads
        )
