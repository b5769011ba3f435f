"""Yanks: in-house files in `files`, upstream releases as overrides; who may; audit and serial."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from packyard.auth.identity import Identity
from packyard.db.accounts import Group, GroupMember, User
from packyard.db.audit import AuditEvent
from packyard.db.governance import ProjectRole, YankOverride
from packyard.db.models import File, Project
from packyard.db.serial import read_serial
from packyard.errors import FileNotFound, InvalidRequest, NotFound, PermissionDenied
from packyard.publish.deletions import delete_release
from packyard.publish.importer import import_directory
from packyard.publish.yanks import refusals_recorded, unyank, yank
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store

ADMIN = Identity(kind="cli", name="root", is_admin=True)
NOW = datetime(2026, 8, 1, tzinfo=UTC)


@pytest.fixture
async def local(tmp_path: Path, database_url: str) -> LocalStore:
    """acme-core 1.0 (wheel and sdist) and 1.1 (wheel), imported for real."""
    local = make_local_store(tmp_path / "data", database_url)
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-core", "1.0")
    build_sdist(dists, "acme-core", "1.0")
    build_wheel(dists, "acme-core", "1.1")
    assert (await import_directory(dists, local.sessions, local.store)).ok
    return local


def add_user(local: LocalStore, name: str, *, admin: bool = False, disabled: bool = False) -> int:
    with local.sessions.begin() as session:
        user = User(name=name, is_admin=admin, disabled=disabled, created_at=NOW)
        session.add(user)
        session.flush()
        return user.id


def grant(
    local: LocalStore, role: str, *, user_id: int | None = None, group: str | None = None
) -> None:
    with local.sessions.begin() as session:
        project = session.scalars(select(Project)).one()
        group_id = None
        if group is not None:
            row = Group(name=group, created_at=NOW)
            session.add(row)
            session.flush()
            group_id = row.id
            if user_id is not None:
                session.add(GroupMember(group_id=group_id, user_id=user_id))
                user_id = None
        session.add(
            ProjectRole(
                project_id=project.id, role=role, user_id=user_id, group_id=group_id, created_at=NOW
            )
        )


def user(name: str, user_id: int, **extra: object) -> Identity:
    return Identity(kind="user", name=name, user_id=user_id, **extra)  # type: ignore[arg-type]


def files(local: LocalStore) -> dict[str, tuple[bool, str | None]]:
    with local.sessions() as session:
        rows = session.scalars(select(File)).all()
        return {row.filename: (row.yanked, row.yanked_reason) for row in rows}


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


def events(local: LocalStore) -> list[tuple[str, str, str, dict[str, object]]]:
    with local.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [(row.actor, row.action, row.outcome, json.loads(row.detail)) for row in rows]


def overrides(local: LocalStore) -> list[tuple[str, str, str | None, str | None, str]]:
    with local.sessions() as session:
        rows = session.scalars(select(YankOverride).order_by(YankOverride.id)).all()
        return [(r.project_name, r.version, r.filename, r.reason, r.yanked_by) for r in rows]


@pytest.mark.anyio
async def test_yanking_a_release_yanks_all_its_files_with_the_reason(local: LocalStore) -> None:
    before = serial(local)
    with local.sessions.begin() as session:
        result = yank(session, ADMIN, "Acme_Core", "1.0", reason="  broken build ")

    assert result.filenames == ("acme_core-1.0-py3-none-any.whl", "acme_core-1.0.tar.gz")
    assert not result.override
    assert files(local) == {
        "acme_core-1.0-py3-none-any.whl": (True, "broken build"),
        "acme_core-1.0.tar.gz": (True, "broken build"),
        "acme_core-1.1-py3-none-any.whl": (False, None),
    }
    assert serial(local) == before + 1
    actor, action, outcome, detail = events(local)[-1]
    assert (actor, action, outcome) == ("cli:root", "yank", "ok")
    assert detail["reason"] == "broken build"


@pytest.mark.anyio
async def test_one_file_can_be_yanked_without_a_reason_and_unyanked(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        yank(session, ADMIN, "acme-core", "1.0", "acme_core-1.0.tar.gz")
    assert files(local)["acme_core-1.0.tar.gz"] == (True, None)
    assert files(local)["acme_core-1.0-py3-none-any.whl"] == (False, None)

    with local.sessions.begin() as session:
        result = unyank(session, ADMIN, "acme-core", "1.0")

    assert result.filenames == ("acme_core-1.0.tar.gz",)
    assert all(state == (False, None) for state in files(local).values())
    changes = [event[1] for event in events(local) if event[1] not in ("import", "project-claim")]
    assert changes == ["yank", "unyank"]


@pytest.mark.anyio
async def test_a_repeated_yank_changes_nothing_and_does_not_bump_the_serial(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        yank(session, ADMIN, "acme-core", "1.1", reason="r")
    before = serial(local)
    with local.sessions.begin() as session:
        result = yank(session, ADMIN, "acme-core", "1.1.0", reason="r")
    assert (result.filenames, serial(local)) == ((), before)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("version", "filename", "error"),
    [
        ("2.0", None, NotFound),
        ("1.0", "acme_core-9.9.tar.gz", FileNotFound),
        ("1.1", "acme_core-1.0.tar.gz", InvalidRequest),
        ("not a version", None, InvalidRequest),
    ],
)
async def test_unknown_or_mismatched_targets_are_refused(
    local: LocalStore, version: str, filename: str | None, error: type[Exception]
) -> None:
    before = serial(local)
    with pytest.raises(error), local.sessions.begin() as session:
        yank(session, ADMIN, "acme-core", version, filename)
    assert serial(local) == before


@pytest.mark.anyio
async def test_an_invalid_project_name_is_refused(local: LocalStore) -> None:
    with pytest.raises(InvalidRequest, match="is invalid"), local.sessions.begin() as session:
        yank(session, ADMIN, "-bad-", "1.0")


@pytest.mark.anyio
@pytest.mark.parametrize("role", ["owner", "maintainer"])
async def test_owners_and_maintainers_may_yank(local: LocalStore, role: str) -> None:
    alice = add_user(local, "alice")
    grant(local, role, user_id=alice)
    with local.sessions.begin() as session:
        yank(session, user("alice", alice), "acme-core", "1.1")
    assert files(local)["acme_core-1.1-py3-none-any.whl"] == (True, None)
    assert events(local)[-1][0] == "user:alice"


@pytest.mark.anyio
async def test_members_of_a_maintaining_group_may_yank(local: LocalStore) -> None:
    bob = add_user(local, "bob")
    grant(local, "maintainer", user_id=bob, group="platform")
    with local.sessions.begin() as session:
        yank(session, user("bob", bob), "acme-core", "1.1")
    assert files(local)["acme_core-1.1-py3-none-any.whl"] == (True, None)


@pytest.mark.anyio
async def test_admins_may_yank_any_in_house_project(local: LocalStore) -> None:
    root = add_user(local, "root", admin=True)
    with local.sessions.begin() as session:
        yank(session, user("root", root), "acme-core", "1.1")
    assert files(local)["acme_core-1.1-py3-none-any.whl"] == (True, None)


@pytest.mark.anyio
async def test_others_may_not_yank_and_the_refusal_is_audited(local: LocalStore) -> None:
    mallory = add_user(local, "mallory")
    identity = user("mallory", mallory)
    with (
        pytest.raises(PermissionDenied, match="isn't allowed to yank"),
        refusals_recorded(local.sessions, identity, "yank", project="acme-core", version="1.1"),
        local.sessions.begin() as session,
    ):
        yank(session, identity, "acme-core", "1.1")
    assert files(local)["acme_core-1.1-py3-none-any.whl"] == (False, None)
    actor, action, outcome, detail = events(local)[-1]
    assert (actor, action, outcome) == ("user:mallory", "yank", "refused")
    assert "isn't allowed" in str(detail["message"])


@pytest.mark.anyio
async def test_a_disabled_owner_or_a_token_for_other_projects_may_not_yank(
    local: LocalStore,
) -> None:
    carol = add_user(local, "carol", disabled=True)
    dave = add_user(local, "dave")
    grant(local, "owner", user_id=carol)
    grant(local, "owner", user_id=dave)
    scoped = Identity(
        kind="token", name="dave", user_id=dave, projects=frozenset({"other"}), token_prefix="p"
    )
    for identity in (user("carol", carol), scoped):
        with pytest.raises(PermissionDenied), local.sessions.begin() as session:
            yank(session, identity, "acme-core", "1.1")


@pytest.mark.anyio
async def test_an_upstream_release_is_yanked_by_an_override(local: LocalStore) -> None:
    before = serial(local)
    with local.sessions.begin() as session:
        result = yank(session, ADMIN, "Public.Lib", "2", reason="CVE-2026-1")

    assert (result.project, result.version, result.override) == ("public-lib", "2", True)
    assert overrides(local) == [("public-lib", "2", None, "CVE-2026-1", "cli:root")]
    assert serial(local) == before + 1
    assert events(local)[-1][3]["override"] is True

    # Yanking it again replaces the reason; it does not add a second row.
    with local.sessions.begin() as session:
        yank(session, ADMIN, "public-lib", "2.0", reason="CVE-2026-2")
    assert overrides(local) == [("public-lib", "2", None, "CVE-2026-2", "cli:root")]


@pytest.mark.anyio
async def test_unyanking_an_upstream_release_removes_its_overrides(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        yank(session, ADMIN, "public-lib", "2.0", "public_lib-2.0.tar.gz")
        yank(session, ADMIN, "public-lib", "2.0")
        yank(session, ADMIN, "public-lib", "1.0")
    with (
        pytest.raises(InvalidRequest, match="unyank the release"),
        local.sessions.begin() as session,
    ):
        unyank(session, ADMIN, "public-lib", "2.0", "public_lib-2.0.tar.gz")

    with local.sessions.begin() as session:
        unyank(session, ADMIN, "public-lib", "2")

    assert overrides(local) == [("public-lib", "1.0", None, None, "cli:root")]
    with pytest.raises(NotFound, match="no yank"), local.sessions.begin() as session:
        unyank(session, ADMIN, "public-lib", "2.0")


@pytest.mark.anyio
async def test_only_admins_may_override_upstream_releases(local: LocalStore) -> None:
    alice = add_user(local, "alice")
    grant(local, "owner", user_id=alice)  # an owner of an in-house project is not enough
    with pytest.raises(PermissionDenied, match="only an admin"), local.sessions.begin() as s:
        yank(s, user("alice", alice), "public-lib", "2.0")
    assert overrides(local) == []


@pytest.mark.anyio
async def test_an_in_house_project_with_no_file_left_yanks_the_upstream_release_it_shows(
    local: LocalStore,
) -> None:
    # An empty project does not hide the upstream's (repository/local.py, `owns_name`):
    # the page is the upstream's, so a yank of its release is an override.
    with local.sessions.begin() as session:
        delete_release(session, ADMIN, "acme-core", "1.0")
        delete_release(session, ADMIN, "acme-core", "1.1")
    with local.sessions.begin() as session:
        result = yank(session, ADMIN, "acme-core", "2.0", reason="hijacked upstream")
    assert result.override
    assert overrides(local) == [("acme-core", "2.0", None, "hijacked upstream", "cli:root")]
    with local.sessions.begin() as session:
        assert unyank(session, ADMIN, "acme-core", "2.0").override
    assert overrides(local) == []
