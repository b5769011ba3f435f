"""The lifecycle services: enable a user, reset a password, delete a group, release a name.

On SQLite and PostgreSQL (`database_url`); every change and refusal audited.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.passwords import verify_password
from packyard.db.accounts import Group, User
from packyard.db.audit import AuditEvent
from packyard.db.governance import AllowedName, DeletedFile, ProjectRole
from packyard.db.models import File, Project
from packyard.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from packyard.publish import accounts, ownership
from packyard.publish.importer import import_directory
from packyard.publish.name_guard import allow_name
from packyard.publish.name_release import release_name_for_good
from tests.builders import LocalStore, build_wheel, make_local_store

OPERATOR = Identity(kind="cli", name="ops", is_admin=True)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    """acme-core (two wheels) and acme-cli (one), in-house; users alice and bob."""
    local = make_local_store(tmp_path / "data", database_url)
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-core", "1.0")
    build_wheel(dists, "acme-core", "1.1")
    build_wheel(dists, "acme-cli", "1.0")
    assert anyio.run(import_directory, dists, local.sessions, local.store).ok
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", "alice-password", actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
    return local


def events(session: Session, action: str) -> list[tuple[str, str, str | None, dict[str, object]]]:
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    )
    return [(e.actor, e.outcome, e.project_name, json.loads(e.detail)) for e in rows]


def test_a_disabled_user_is_enabled_again(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.disable_user(session, "alice", actor=OPERATOR)
    with local.sessions.begin() as session:
        accounts.enable_user(session, "Alice", actor=OPERATOR)
    with local.sessions.begin() as session:
        assert not session.scalars(select(User).where(User.name == "alice")).one().disabled
        assert events(session, "user-enable") == [("cli:ops", "ok", None, {"user": "alice"})]
        with pytest.raises(Conflict, match="The user 'alice' is not disabled"):
            accounts.enable_user(session, "alice", actor=OPERATOR)
        with pytest.raises(NotFound, match="There is no user named 'carol'"):
            accounts.enable_user(session, "carol", actor=OPERATOR)


def test_a_password_is_reset_and_the_old_one_stops_working(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.set_password(session, "alice", "a-new-password", actor=OPERATOR)
        accounts.set_password(session, "bob", "bobs-first-password", actor=OPERATOR)
    with local.sessions.begin() as session:
        stored = {u.name: u.password_hash for u in session.scalars(select(User))}
        assert verify_password(stored["alice"], "a-new-password")
        assert not verify_password(stored["alice"], "alice-password")
        assert verify_password(stored["bob"], "bobs-first-password")  # tokens-only before
        logged = events(session, "user-password-reset")
        assert [detail for *_, detail in logged] == [{"user": "alice"}, {"user": "bob"}]
        assert "a-new-password" not in json.dumps(logged)
        with pytest.raises(InvalidRequest, match="at least 8 characters"):
            accounts.set_password(session, "alice", "short", actor=OPERATOR)
        with pytest.raises(NotFound):
            accounts.set_password(session, "carol", "long-enough-pw", actor=OPERATOR)


def test_a_deleted_group_takes_its_roles_and_names_the_projects_left_without_owner(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "alice", actor=OPERATOR)
        ownership.add_role(session, OPERATOR, "acme-core", "owner", group="devs")
        ownership.add_role(session, OPERATOR, "acme-cli", "owner", group="devs")
        ownership.add_role(session, OPERATOR, "acme-cli", "owner", user="bob")

    with local.sessions.begin() as session:
        orphaned = accounts.delete_group(session, "DEVS", actor=OPERATOR)

    assert orphaned == ["acme-core"]  # acme-cli still has bob
    with local.sessions.begin() as session:
        assert session.scalars(select(Group)).all() == []
        assert session.scalars(select(User.name).order_by(User.name)).all() == ["alice", "bob"]
        assert [row.user_id is not None for row in session.scalars(select(ProjectRole))] == [True]
        assert ownership.orphaned_projects(session) == ["acme-core"]
        ((actor, outcome, _, detail),) = events(session, "group-delete")
        assert (actor, outcome) == ("cli:ops", "ok")
        assert detail == {
            "group": "devs",
            "members": ["alice"],
            "roles": {"acme-cli": "owner", "acme-core": "owner"},
            "orphaned": ["acme-core"],
        }
        with pytest.raises(NotFound, match="There is no group named 'devs'"):
            accounts.delete_group(session, "devs", actor=OPERATOR)


@pytest.mark.anyio
async def test_releasing_a_name_deletes_its_project_and_takes_it_off_the_allow_list(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        allow_name(session, OPERATOR, "acme-core", "our fork")
        ownership.add_role(session, OPERATOR, "acme-core", "owner", user="alice")

    release = await release_name_for_good(local.sessions, local.store, OPERATOR, "Acme_Core")

    assert release.name == "acme-core"
    assert release.was_allowed
    assert release.deletion is not None
    wheels = ["acme_core-1.0-py3-none-any.whl", "acme_core-1.1-py3-none-any.whl"]
    assert sorted(release.deletion.filenames) == wheels
    assert release.summary == (
        "Released 'acme-core' to the upstream: its in-house project deleted (2 files) "
        "and taken off the allow-list."
    )
    with local.sessions() as session:
        assert session.scalars(select(Project.name)).all() == ["acme-cli"]
        assert session.get(AllowedName, "acme-core") is None
        assert sorted(session.scalars(select(DeletedFile.filename))) == wheels
        assert session.scalars(select(File.filename)).all() == ["acme_cli-1.0-py3-none-any.whl"]
        ((actor, outcome, project, detail),) = events(session, "name-release")
    assert (actor, outcome, project) == ("cli:ops", "ok", "acme-core")
    assert detail == {"files": wheels, "was_allowed": True}
    assert not any("acme_core" in path.name for path in local.blob_files())


@pytest.mark.anyio
async def test_an_allowed_name_without_a_project_can_be_released(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        allow_name(session, OPERATOR, "requests")
    release = await release_name_for_good(local.sessions, local.store, OPERATOR, "requests")
    assert (release.deletion, release.was_allowed) == (None, True)
    assert release.summary == "Released 'requests' to the upstream: taken off the allow-list."


@pytest.mark.anyio
async def test_only_an_in_house_name_is_released_and_only_by_an_admin(local: LocalStore) -> None:
    with pytest.raises(NotFound, match="The name 'requests' is not in-house"):
        await release_name_for_good(local.sessions, local.store, OPERATOR, "requests")
    with local.sessions() as session:
        bob = session.scalars(select(User).where(User.name == "bob")).one()
        caller = Identity(kind="user", name="bob", user_id=bob.id)
    with pytest.raises(PermissionDenied, match="isn't allowed to release the name 'acme-cli'"):
        await release_name_for_good(local.sessions, local.store, caller, "acme-cli")
    with local.sessions() as session:
        assert "acme-cli" in session.scalars(select(Project.name)).all()
        assert [(a, o, p) for a, o, p, _ in events(session, "name-release")] == [
            ("user:bob", "refused", "acme-cli")
        ]
