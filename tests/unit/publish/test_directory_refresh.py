"""The scheduled directory refresh (`publish/directory_refresh.py`) with a real
`LdapDirectory` on a real slapd (tests/slapd.py), on SQLite and PostgreSQL:
groups follow the directory, a person it no longer has is disabled (their token
dies, their lone projects go to their manager), a directory that is down
changes nothing but staleness, inactive people hand over to the fallback group,
and one refresh per period however many processes try."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.authenticate import Authenticators
from packyard.auth.directory.ldap import LdapDirectory
from packyard.auth.identity import Identity
from packyard.auth.sso.person import Person
from packyard.auth.tokens import verify_token
from packyard.db.accounts import Group, GroupMember, User
from packyard.db.audit import AuditEvent
from packyard.db.models import Project
from packyard.errors import AuthenticationFailed
from packyard.publish import accounts, directory_accounts, ownership, succession
from packyard.publish.audit import Origin
from packyard.publish.directory_refresh import DirectoryRefresh, RefreshReport
from packyard.settings import (
    AuthSettings,
    DirectoryGroupSettings,
    LdapSettings,
    SuccessionSettings,
)
from tests.builders import LocalStore, make_local_store
from tests.slapd import Slapd, SlapdUnavailable, start_slapd

pytestmark = pytest.mark.anyio
OPERATOR = Identity(kind="cli", name="ops", is_admin=True)
BROWSER = Origin(client_ip="127.0.0.1", user_agent="test-browser")
REFRESHER = "cli:directory-refresh"
GROUPS = DirectoryGroupSettings(
    map={"Accelerator Controls": "acc-controls", "Beam Physics": "beam-physics"},
    admins="packyard-admins",
)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    try:
        server = start_slapd(tmp_path_factory.mktemp("slapd"))
    except SlapdUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


@dataclass
class Directory:
    """The module's slapd, with the people a test adds to it removed afterwards
    (and the server brought back if the test stopped it)."""

    slapd: Slapd
    added: list[str] = field(default_factory=list)

    def add(self, uid: str, groups: list[str], manager: str | None = None) -> None:
        self.slapd.add_user(uid, f"{uid.title()} Tester", f"{uid}@example.org", manager)
        self.slapd.set_groups(uid, groups)
        self.added.append(uid)

    def remove(self, uid: str) -> None:
        self.slapd.remove_user(uid)
        self.added.remove(uid)

    def settings(self) -> LdapSettings:
        # As an organisation sets it up (and tests/e2e/test_sso.py): people and
        # groups under their own bases, bound as a reader.
        return LdapSettings(
            url=self.slapd.url,
            bind_dn=self.slapd.bind_dn,
            bind_secret=self.slapd.bind_password,
            base_dn=f"ou=people,{self.slapd.base_dn}",
            group_base_dn=f"ou=groups,{self.slapd.base_dn}",
            timeout_seconds=2,
        )


@pytest.fixture
def ldap(slapd: Slapd) -> Iterator[Directory]:
    directory = Directory(slapd)
    yield directory
    slapd.resume()
    if slapd._process is None:
        slapd.start()
    for uid in directory.added:
        slapd.remove_user(uid)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> Iterator[LocalStore]:
    store = make_local_store(tmp_path, database_url)
    yield store
    store.engine.dispose()


def refresher(
    local: LocalStore,
    ldap: Directory | None,
    succession_settings: SuccessionSettings | None = None,
) -> DirectoryRefresh:
    settings = AuthSettings(
        ldap=ldap.settings() if ldap is not None else None,
        directory_groups=GROUPS,
        succession=succession_settings or SuccessionSettings(),
    )
    directory = LdapDirectory(settings.ldap) if settings.ldap is not None else None
    return DirectoryRefresh(local.sessions, directory, settings)


def sign_in(local: LocalStore, name: str, groups: frozenset[str] | None = frozenset()) -> None:
    """`name` signs in with the provider `lab` (their first time: their account is made)."""
    person = Person("lab", f"sub-{name}", name, email=f"{name}@old.example", groups=groups)
    with local.sessions.begin() as session:
        directory_accounts.sign_in(session, person, GROUPS, adopt_local_users=False, origin=BROWSER)


def own(local: LocalStore, project: str, owner: str) -> None:
    with local.sessions.begin() as session:
        session.add(Project(name=project, display_name=project, created_at=datetime.now(UTC)))
        session.flush()
        ownership.add_role(session, OPERATOR, project, "owner", user=owner)


def owners(local: LocalStore, project: str) -> list[str]:
    with local.sessions() as session:
        roles = ownership.list_roles(session, project)
    return sorted(f"{role.kind}:{role.name}" for role in roles if role.role == "owner")


def user(local: LocalStore, name: str) -> User:
    with local.sessions() as session:
        return session.scalars(select(User).where(User.name == name)).one()


def as_user(session: Session, name: str) -> User:
    return session.scalars(select(User).where(User.name == name)).one()


def memberships(local: LocalStore, name: str) -> dict[str, str]:
    with local.sessions() as session:
        rows = session.execute(
            select(Group.name, GroupMember.source)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .join(User, User.id == GroupMember.user_id)
            .where(User.name == name)
        )
        return {group: source for group, source in rows}


def events(local: LocalStore, action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(actor, project, detail) of the audit events of `action`, oldest first."""
    with local.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
        return [(row.actor, row.project_name, json.loads(row.detail)) for row in rows]


class _Refreshed(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("directory-refresh:"):
            self.event.set()  # the loop logs on the event loop's thread


@contextmanager
def logged_refreshes() -> Iterator[anyio.Event]:
    """Set when the refresh logs that it did its work."""
    logger, handler = logging.getLogger("packyard.directory"), _Refreshed()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.event
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_refresh_brings_groups_names_managers_and_admins_in_line(
    local: LocalStore, ldap: Directory
) -> None:
    ldap.add("dana", ["Beam Physics"], manager="carol")
    for name in ("alice", "bob"):
        sign_in(local, name)
    sign_in(local, "dana", frozenset({"Accelerator Controls"}))
    with local.sessions.begin() as session:
        accounts.add_user(session, "root", None, admin=True, actor=OPERATOR)  # local
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "dana", actor=OPERATOR)
    assert memberships(local, "dana") == {"acc-controls": "directory", "devs": "local"}

    report = await refresher(local, ldap).refresh(force=True)

    assert report == RefreshReport(checked=3, directory="read")
    alice = user(local, "alice")
    assert (alice.email, alice.full_name, alice.manager) == (
        "alice@example.org",
        "Alice Liddell",
        "bob",
    )
    assert memberships(local, "alice") == {"acc-controls": "directory"}
    assert not alice.groups_stale
    assert alice.directory_checked_at is not None
    assert user(local, "bob").is_admin
    assert not user(local, "alice").is_admin
    # The directory's membership went, the admin's stayed.
    assert memberships(local, "dana") == {"beam-physics": "directory", "devs": "local"}
    assert user(local, "dana").manager == "carol"
    assert [detail for _, _, detail in events(local, "user-admin-grant")] == [
        {"user": "bob", "via": "directory"}
    ]
    removed = events(local, "group-member-remove")
    assert removed == [
        (REFRESHER, None, {"group": "acc-controls", "user": "dana", "via": "directory"})
    ]
    assert events(local, "directory-refresh") == [
        (
            REFRESHER,
            None,
            {
                "checked": 3,
                "directory": "read",
                "handed_over": [],
                "inactive": [],
                "removed": [],
            },
        )
    ]
    with local.sessions() as session:
        root = as_user(session, "root")
        assert (root.is_admin, root.email, root.disabled) == (True, None, False)


async def test_groups_the_id_token_named_stay_between_sign_ins(
    local: LocalStore, ldap: Directory
) -> None:
    ldap.add("erin", ["Beam Physics"])
    token_groups = frozenset({"Accelerator Controls"})
    person = Person("lab", "sub-erin", "erin", groups=token_groups, claimed_groups=token_groups)
    with local.sessions.begin() as session:
        directory_accounts.sign_in(session, person, GROUPS, adopt_local_users=False, origin=BROWSER)

    await refresher(local, ldap).refresh(force=True)

    # LDAP's group joins; the token's stays until a sign-in says otherwise.
    assert memberships(local, "erin") == {
        "acc-controls": "directory",
        "beam-physics": "directory",
    }


async def test_a_person_the_directory_no_longer_has_is_disabled_and_hands_over(
    local: LocalStore, ldap: Directory
) -> None:
    ldap.add("dana", ["Accelerator Controls"], manager="bob")
    for name in ("bob", "dana"):
        sign_in(local, name)
    own(local, "dana-tools", "dana")
    own(local, "shared", "dana")
    with local.sessions.begin() as session:
        ownership.add_role(session, OPERATOR, "shared", "owner", user="bob")
        token, _ = accounts.create_token(session, "dana", actor=OPERATOR)
    refresh = refresher(local, ldap)
    await refresh.refresh(force=True)  # dana's manager, read from LDAP
    assert user(local, "dana").manager == "bob"
    async with httpx.AsyncClient(trust_env=False) as http:
        authenticators = Authenticators(local.sessions, AuthSettings(), http)
        before = await authenticators.authenticate(f"Bearer {token}")
        assert (before.kind, before.name) == ("token", "dana")

        ldap.remove("dana")
        report = await refresh.refresh(force=True)

        assert report is not None
        assert (report.removed, report.handed_over, report.checked) == (["dana"], ["dana-tools"], 2)
        dana = user(local, "dana")
        assert dana.disabled
        assert dana.directory_removed_at is not None
        assert dana.directory_removed_at > datetime.now(UTC) - timedelta(minutes=1)
        with pytest.raises(AuthenticationFailed):
            await authenticators.authenticate(f"Bearer {token}")
    with local.sessions() as session, pytest.raises(AuthenticationFailed, match="disabled"):
        verify_token(session, token)
    assert owners(local, "dana-tools") == ["user:bob", "user:dana"]
    assert owners(local, "shared") == ["user:bob", "user:dana"]  # bob owned it already
    assert events(local, "user-disable") == [
        (REFRESHER, None, {"user": "dana", "reason": "no longer in the directory"})
    ]
    assert events(local, "project-handover") == [
        (
            REFRESHER,
            "dana-tools",
            {"from_user": "dana", "to": "bob", "reason": "directory-removed", "via": "manager"},
        )
    ]
    with local.sessions() as session:
        notices = succession.notices(session, "bob")
    assert [(n.project, n.from_user, n.reason) for n in notices] == [
        ("dana-tools", "dana", "directory-removed")
    ]
    # Disabled, dana is no longer looked up; nothing is handed over twice.
    again = await refresh.refresh(force=True)
    assert again is not None
    assert (again.checked, again.removed, again.handed_over) == (1, [], [])
    assert len(events(local, "project-handover")) == 1


async def test_a_directory_that_is_down_changes_nothing_but_staleness(
    local: LocalStore, ldap: Directory
) -> None:
    sign_in(local, "alice", frozenset({"Accelerator Controls"}))
    sign_in(local, "ghost")  # not in the directory: a leaver, once it answers
    own(local, "ghost-tools", "ghost")
    checked_at = user(local, "alice").directory_checked_at
    refresh = refresher(local, ldap)
    ldap.slapd.stop()

    report = await refresh.refresh(force=True)

    assert report is not None
    assert report.directory.startswith("unavailable: ")
    assert (report.checked, report.removed, report.handed_over) == (2, [], [])
    for name in ("alice", "ghost"):
        account = user(local, name)
        assert account.groups_stale
        assert not account.disabled
        assert account.directory_removed_at is None
    assert user(local, "alice").directory_checked_at == checked_at
    assert memberships(local, "alice") == {"acc-controls": "directory"}
    assert owners(local, "ghost-tools") == ["user:ghost"]
    assert events(local, "user-disable") == []
    assert [detail["directory"] for _, _, detail in events(local, "directory-refresh")] == [
        report.directory
    ]

    # Back: the groups are fresh again, and the leaver leaves.
    ldap.slapd.start()
    back = await refresh.refresh(force=True)
    assert back is not None
    assert (back.directory, back.removed) == ("read", ["ghost"])
    assert not user(local, "alice").groups_stale
    assert user(local, "ghost").disabled


async def test_most_people_missing_at_once_is_taken_for_a_broken_configuration(
    local: LocalStore, ldap: Directory
) -> None:
    # Four of five not found: a wrong base_dn or filter, not a wave of departures.
    for name in ("alice", "gone1", "gone2", "gone3", "gone4"):
        sign_in(local, name)

    report = await refresher(local, ldap).refresh(force=True)

    assert report is not None
    assert report.directory.startswith("implausible: 4 of 5 people not found; nobody disabled")
    assert report.removed == []
    with local.sessions() as session:
        assert not any(session.scalars(select(User.disabled)))
        assert all(session.scalars(select(User.groups_stale)))
    assert events(local, "user-disable") == []
    assert [detail["directory"] for _, _, detail in events(local, "directory-refresh")] == [
        report.directory
    ]


async def test_an_inactive_person_hands_over_to_the_fallback_group_and_stays_enabled(
    local: LocalStore,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    for name in ("idle", "never", "recent"):
        sign_in(local, name)
        own(local, f"{name}-tools", name)
    with local.sessions.begin() as session:
        as_user(session, "idle").last_sign_in_at = long_ago
        never = as_user(session, "never")
        never.last_sign_in_at, never.created_at = None, long_ago
        # A local account is not the directory's to judge.
        accounts.add_user(session, "carol", None, actor=OPERATOR)
        as_user(session, "carol").created_at = long_ago
        accounts.create_group(session, "ops", actor=OPERATOR)
        accounts.add_member(session, "ops", "carol", actor=OPERATOR)
    own(local, "carol-tools", "carol")
    settings = SuccessionSettings(max_inactive_days=30, fallback_group="ops")
    refresh = refresher(local, None, settings)
    assert refresh.needed

    report = await refresh.refresh(force=True)

    assert report is not None
    assert sorted(report.inactive) == ["idle", "never"]
    assert sorted(report.handed_over) == ["idle-tools", "never-tools"]
    assert (report.removed, report.directory) == ([], "not configured")
    for name in ("idle", "never"):
        assert owners(local, f"{name}-tools") == ["group:ops", f"user:{name}"]
        assert not user(local, name).disabled
    assert owners(local, "recent-tools") == ["user:recent"]
    assert owners(local, "carol-tools") == ["user:carol"]
    handovers = events(local, "project-handover")
    assert sorted(
        (project, detail["reason"], detail["via"]) for _, project, detail in handovers
    ) == [
        ("idle-tools", "inactive", "fallback-group"),
        ("never-tools", "inactive", "fallback-group"),
    ]
    # Handed over once: the next period finds nothing left alone.
    again = await refresh.refresh(force=True)
    assert again is not None
    assert (again.inactive, again.handed_over) == ([], [])
    assert len(events(local, "project-handover")) == 2


async def test_an_inactive_person_with_nobody_to_take_over_is_left_alone(
    local: LocalStore,
) -> None:
    sign_in(local, "idle")
    own(local, "idle-tools", "idle")
    with local.sessions.begin() as session:
        idle = as_user(session, "idle")
        idle.last_sign_in_at = datetime.now(UTC) - timedelta(days=400)
        idle.manager = "gone-boss"  # not a user here
    # The fallback group does not exist.
    settings = SuccessionSettings(max_inactive_days=30, fallback_group="ops")
    refresh = refresher(local, None, settings)

    for _ in range(2):
        report = await refresh.refresh(force=True)
        assert report is not None
        assert (report.inactive, report.handed_over) == ([], [])

    assert owners(local, "idle-tools") == ["user:idle"]
    assert not user(local, "idle").disabled
    assert events(local, "project-orphaned") == []
    assert events(local, "project-handover") == []
    assert len(events(local, "directory-refresh")) == 2


async def test_one_refresh_per_period(local: LocalStore, ldap: Directory) -> None:
    sign_in(local, "alice")
    assert not refresher(local, None).needed

    # The loop of a fresh server refreshes at once: nothing was ever done.
    hourly = refresher(local, ldap)
    assert hourly.needed
    with logged_refreshes() as refreshed:
        async with hourly.running():
            with anyio.fail_after(10):
                await refreshed.wait()
            await anyio.sleep(0.2)  # and then waits for the hour
    assert len(events(local, "directory-refresh")) == 1
    assert memberships(local, "alice") == {"acc-controls": "directory"}

    # Every process finds it not due until the period has passed; force always runs.
    assert await hourly.refresh() is None
    assert await refresher(local, ldap).refresh() is None
    assert await hourly.refresh(force=True) is not None
    assert await hourly.refresh() is None
    # With a period of 0.6 s, due again 0.6 s later.
    short = refresher(local, ldap, SuccessionSettings(refresh_minutes=0.01))
    await anyio.sleep(0.6)
    assert await short.refresh() is not None
    assert len(events(local, "directory-refresh")) == 3


async def test_two_processes_at_once_refresh_once(local: LocalStore, ldap: Directory) -> None:
    sign_in(local, "alice")
    sign_in(local, "ghost")  # not in the directory: the work shows
    own(local, "ghost-tools", "ghost")
    refreshes = [refresher(local, ldap), refresher(local, ldap)]
    start = threading.Barrier(2)
    reports: list[RefreshReport | None] = []

    def refresh_now(refresh: DirectoryRefresh) -> None:
        start.wait()
        reports.append(anyio.run(refresh.refresh))  # each in its own event loop

    async with anyio.create_task_group() as tasks:
        for refresh in refreshes:
            tasks.start_soon(anyio.to_thread.run_sync, refresh_now, refresh)

    assert sorted(report is None for report in reports) == [False, True]
    assert len(events(local, "directory-refresh")) == 1
    assert [detail["user"] for _, _, detail in events(local, "user-disable")] == ["ghost"]
    assert len(events(local, "group-member-add")) == 1  # alice's acc-controls, once
