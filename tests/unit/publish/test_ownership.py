"""Who may upload and who manages roles: the rules of auth/permissions, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity, IdentityKind
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.governance import ProjectRole
from packyard.db.models import Project
from packyard.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, ProjectNotFound
from packyard.publish import accounts
from packyard.publish.ownership import (
    add_role,
    check_upload,
    claim,
    list_roles,
    orphaned_projects,
    remove_role,
)
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


def identity(
    session: Session,
    name: str,
    kind: IdentityKind = "user",
    projects: frozenset[str] | None = None,
) -> Identity:
    user = session.scalars(select(User).where(User.name == name)).one()
    return Identity(
        kind=kind,
        name=name,
        user_id=user.id,
        is_admin=user.is_admin,
        projects=projects,
        token_prefix="pky_test0000" if kind == "token" else None,
    )


def ci(projects: frozenset[str]) -> Identity:
    return Identity(kind="ci", name="gitlab.example/acme/tools", projects=projects)


def new_project(session: Session, uploader: Identity, name: str) -> Project:
    """What the upload route does for a first upload."""
    assert check_upload(session, uploader, name) is False
    project = Project(name=name, display_name=name, created_at=datetime.now(UTC))
    session.add(project)
    claim(session, uploader, project)
    return project


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    """alice owns acme-tools; group devs (bob) maintains it; carol has no role;
    root is an admin; dave (disabled) was the only owner of old-lib."""
    local = make_local_store(tmp_path, database_url)
    with local.sessions.begin() as session:
        for name in ("alice", "bob", "carol", "dave"):
            accounts.add_user(session, name, None, actor=OPERATOR)
        accounts.add_user(session, "root", None, admin=True, actor=OPERATOR)
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "bob", actor=OPERATOR)
    with local.sessions.begin() as session:
        new_project(session, identity(session, "alice"), "acme-tools")
        new_project(session, identity(session, "dave"), "old-lib")
        add_role(session, OPERATOR, "acme-tools", "maintainer", group="devs")
        accounts.disable_user(session, "dave", actor=OPERATOR)
    return local


def events(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_first_uploader_becomes_owner_and_it_is_audited(local: LocalStore) -> None:
    with local.sessions() as session:
        (row,) = session.scalars(
            select(ProjectRole)
            .join(Project)
            .where(Project.name == "acme-tools")
            .where(ProjectRole.role == "owner")
        )
        alice = session.scalars(select(User).where(User.name == "alice")).one()
        assert row.user_id == alice.id
        claimed = [e for e in events(session, "project-claim") if e.project_name == "acme-tools"]
        assert [(e.actor, json.loads(e.detail)["owner"]) for e in claimed] == [
            ("user:alice", "alice")
        ]


@pytest.mark.parametrize("who", ["alice", "bob", "root"])
def test_owners_maintainers_through_a_group_and_admins_may_upload(
    local: LocalStore, who: str
) -> None:
    with local.sessions() as session:
        assert check_upload(session, identity(session, who), "Acme_Tools") is True
        assert check_upload(session, identity(session, who, "token"), "acme-tools") is True


def test_anyone_else_is_refused_with_warehouses_message(local: LocalStore) -> None:
    with local.sessions() as session:
        for kind in ("user", "token"):
            with pytest.raises(PermissionDenied) as refused:
                check_upload(session, identity(session, "carol", kind), "acme-tools")
            assert refused.value.message == (
                "The user 'carol' isn't allowed to upload to project 'acme-tools'."
            )


@pytest.mark.parametrize("project", ["acme-tools", "brand-new"])
def test_a_credential_limited_to_other_projects_gets_the_token_message(
    local: LocalStore, project: str
) -> None:
    with local.sessions() as session:
        scoped = identity(session, "root", "token", projects=frozenset({"other"}))
        for who in (scoped, ci(frozenset({"other"}))):
            with pytest.raises(PermissionDenied) as refused:
                check_upload(session, who, project)
            assert refused.value.message == (
                f"The given token isn't allowed to upload to project '{project}'."
            )


def test_a_ci_identity_may_upload_to_the_projects_its_configuration_grants(
    local: LocalStore,
) -> None:
    with local.sessions() as session:
        job = ci(frozenset({"acme-tools", "acme-cli"}))
        assert check_upload(session, job, "acme-tools") is True
        assert check_upload(session, job, "acme-cli") is False


def test_a_user_disabled_after_signing_in_passes_nothing(local: LocalStore) -> None:
    with local.sessions() as session:
        alice, root = identity(session, "alice"), identity(session, "root", "token")
    with local.sessions.begin() as session:
        accounts.disable_user(session, "alice", actor=OPERATOR)
        accounts.disable_user(session, "root", actor=OPERATOR)
    with local.sessions() as session:
        for who, project in [(alice, "acme-tools"), (root, "acme-tools"), (alice, "new-one")]:
            with pytest.raises(PermissionDenied, match="disabled"):
                check_upload(session, who, project)


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_archived_and_quarantined_projects_accept_no_uploads(
    local: LocalStore, status: str
) -> None:
    with local.sessions() as session:
        session.scalars(select(Project).where(Project.name == "acme-tools")).one().status = status
        with pytest.raises(PermissionDenied, match=f"is {status} and accepts no new uploads"):
            check_upload(session, identity(session, "root"), "acme-tools")


def test_a_ci_claim_names_no_owner_and_leaves_the_project_for_an_admin(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        new_project(session, ci(frozenset({"acme-cli"})), "acme-cli")
    with local.sessions() as session:
        assert list_roles(session, "acme-cli") == []
        assert "acme-cli" in orphaned_projects(session)
        (event,) = [e for e in events(session, "project-claim") if e.project_name == "acme-cli"]
        assert event.actor == "ci:gitlab.example/acme/tools"
        assert json.loads(event.detail)["owner"] is None
        assert json.loads(event.detail)["subject"] == "gitlab.example/acme/tools"


def test_an_owner_adds_a_maintainer_who_may_then_upload(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        add_role(session, identity(session, "alice"), "acme-tools", "maintainer", user="Carol")
    with local.sessions() as session:
        assert check_upload(session, identity(session, "carol"), "acme-tools")
        (event,) = events(session, "role-add")[-1:]
        assert event.actor == "user:alice"
        assert json.loads(event.detail) == {"member": "user 'carol'", "role": "maintainer"}


def test_maintainers_and_strangers_cannot_manage_roles(local: LocalStore) -> None:
    with local.sessions() as session:
        for who in ("bob", "carol"):
            with pytest.raises(PermissionDenied, match="only its owners and admins"):
                add_role(session, identity(session, who), "acme-tools", "owner", user=who)
        scoped = identity(session, "alice", "token", projects=frozenset({"other"}))
        with pytest.raises(PermissionDenied, match="only its owners and admins"):
            add_role(session, scoped, "acme-tools", "maintainer", user="carol")


def test_bad_role_requests_are_refused_clearly(local: LocalStore) -> None:
    with local.sessions() as session:
        alice = identity(session, "alice")
        with pytest.raises(InvalidRequest, match="Unknown role 'admin'"):
            add_role(session, alice, "acme-tools", "admin", user="carol")
        with pytest.raises(InvalidRequest, match="exactly one user or one group"):
            add_role(session, alice, "acme-tools", "owner", user="carol", group="devs")
        with pytest.raises(InvalidRequest, match="exactly one user or one group"):
            remove_role(session, alice, "acme-tools")
        with pytest.raises(NotFound, match="no user named 'zed'"):
            add_role(session, alice, "acme-tools", "owner", user="zed")
        with pytest.raises(ProjectNotFound):
            add_role(session, alice, "nothing-here", "owner", user="carol")
        with pytest.raises(Conflict, match="already owner"):
            add_role(session, alice, "acme-tools", "owner", user="alice")
        with pytest.raises(InvalidRequest, match="disabled"):
            add_role(session, OPERATOR, "acme-tools", "owner", user="dave")
        with pytest.raises(NotFound, match="has no role"):
            remove_role(session, alice, "acme-tools", user="carol")


def test_the_last_owner_stays_unless_an_admin_removes_it(local: LocalStore) -> None:
    with local.sessions() as session:
        alice = identity(session, "alice")
        with pytest.raises(PermissionDenied, match="last owner of project 'acme-tools'"):
            remove_role(session, alice, "acme-tools", user="alice")
        with pytest.raises(PermissionDenied, match="last owner"):
            add_role(session, alice, "acme-tools", "maintainer", user="alice")
        remove_role(session, identity(session, "root"), "acme-tools", user="alice")
        assert "acme-tools" in orphaned_projects(session)


def test_with_a_second_owner_an_owner_may_step_down(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        alice = identity(session, "alice")
        add_role(session, alice, "acme-tools", "owner", group="devs")  # maintainer -> owner
        remove_role(session, alice, "acme-tools", user="alice")
    with local.sessions() as session:
        assert [(r.role, r.kind, r.name) for r in list_roles(session, "acme-tools")] == [
            ("owner", "group", "devs")
        ]
        assert not check_upload(session, identity(session, "alice"), "new-name")
        with pytest.raises(PermissionDenied):
            check_upload(session, identity(session, "alice"), "acme-tools")
        assert [json.loads(e.detail)["member"] for e in events(session, "role-remove")] == [
            "user 'alice'"
        ]


def test_roles_are_listed_owners_first(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        add_role(session, OPERATOR, "acme-tools", "maintainer", user="carol")
        add_role(session, OPERATOR, "acme-tools", "owner", user="root")
    with local.sessions() as session:
        assert [(r.role, r.kind, r.name) for r in list_roles(session, "Acme.Tools")] == [
            ("owner", "user", "alice"),
            ("owner", "user", "root"),
            ("maintainer", "group", "devs"),
            ("maintainer", "user", "carol"),
        ]
        assert [(r.name, r.disabled) for r in list_roles(session, "old-lib")] == [("dave", True)]


def test_orphans_are_projects_without_an_enabled_owner(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        for name in ("group-owned", "empty-group-owned", "maintained-only"):
            session.add(Project(name=name, display_name=name, created_at=datetime.now(UTC)))
        accounts.create_group(session, "ghosts", actor=OPERATOR)
        accounts.add_member(session, "ghosts", "dave", actor=OPERATOR)  # disabled
        session.flush()
        add_role(session, OPERATOR, "group-owned", "owner", group="devs")
        add_role(session, OPERATOR, "empty-group-owned", "owner", group="ghosts")
        add_role(session, OPERATOR, "maintained-only", "maintainer", user="carol")
    with local.sessions() as session:
        assert orphaned_projects(session) == ["empty-group-owned", "maintained-only", "old-lib"]
