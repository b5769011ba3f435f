"""The scheduled look at the directory: one replica per `[auth.succession] refresh_minutes`.

    refresh = DirectoryRefresh(sessions, directory, settings.auth)
    async with refresh.running():   # the app's lifespan: a task, stopped on exit
        ...

Each period, for every enabled directory account (`users.directory` set):

- with `[auth.ldap]`: the person is read again. Their groups, manager and
  e-mail follow the directory (`directory_accounts.update`); a person the
  directory no longer has is disabled (their tokens die with it) and their
  projects are handed over (`succession.hand_over`, reason `directory-removed`).
  A directory that cannot be reached changes nothing but marks the groups stale,
  and so does one that suddenly lacks most people (`MAX_REMOVED_SHARE`: a wrong
  `base_dn` must not disable everyone);
- with `[auth.succession] max_inactive_days`: a person whose last sign-in is
  older hands over the projects only they own (reason `inactive`); they keep
  their account.

Like the advisories' refresh, every worker of every replica runs the loop and
one of them does the work: the schedule is the newest `directory-refresh`
audit event, and the work's transaction first claims it (PostgreSQL: an
advisory lock a second replica fails at once; SQLite: the write lock). A
failure is logged as a `directory-refresh-failed` event and tried again a
period later; it never stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.to_thread
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.directory.profile import DirectoryProfile, DirectoryUnavailable
from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.claims import claim
from packyard.publish import directory_accounts, succession
from packyard.publish.audit import Origin, record
from packyard.settings import AuthSettings

REFRESH = Identity(kind="cli", name="directory-refresh", is_admin=True)
SCHEDULE = Origin(client_ip=None, user_agent="packyard-refresh")
ACTION = "directory-refresh"
# The PostgreSQL advisory lock of the refresh's transaction ("pkyl").
REFRESH_LOCK = 0x706B796C
MAX_SLACK = timedelta(minutes=1)
# More people gone at once than this share (and more than a few) is taken for a
# broken configuration (a wrong base_dn, a filter that finds nobody), not a
# wave of departures: nobody is disabled, and the refresh says why.
MAX_REMOVED_SHARE = 0.5
MAX_REMOVED_ALWAYS = 3
LOGGER = logging.getLogger("packyard.directory")


class Directory(Protocol):
    """`auth.directory.ldap.LdapDirectory`."""

    def lookup_many(self, usernames: list[str]) -> Mapping[str, DirectoryProfile | None]:
        """Raises DirectoryUnavailable when the directory cannot be asked."""
        ...


@dataclass
class RefreshReport:
    """What one refresh did, as its audit event and log line say."""

    checked: int = 0
    removed: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)
    directory: str = "not configured"


class DirectoryRefresh:
    """The refresh loop of one process; see the module's docstring."""

    def __init__(
        self, sessions: sessionmaker[Session], directory: Directory | None, settings: AuthSettings
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._settings = settings
        self._period = timedelta(minutes=settings.succession.refresh_minutes)
        self._slack = min(MAX_SLACK, self._period / 10)

    @property
    def needed(self) -> bool:
        """Whether there is anything to do: LDAP to follow, or inactivity to watch."""
        return (
            self._directory is not None or self._settings.succession.max_inactive_days is not None
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loop in a task while the block runs; cancel it on exit."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._run)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await anyio.sleep(await anyio.to_thread.run_sync(self._seconds_until_due))
                if await self.refresh() is None:
                    await anyio.sleep(self._slack.total_seconds())
            except Exception as exc:  # whatever it was, the server goes on
                LOGGER.warning(
                    "directory-refresh-failed: %s", f"{type(exc).__name__}: {exc}".splitlines()[0]
                )
                await anyio.sleep(self._period.total_seconds())

    async def refresh(self, *, force: bool = False) -> RefreshReport | None:
        """Look at the directory now, if due (or `force`) and no other process does.

        Returns the report, or None when it was not this process's to do.
        """
        if not force and await anyio.to_thread.run_sync(self._seconds_until_due) > 0:
            return None
        names = await anyio.to_thread.run_sync(self._directory_users)
        profiles: Mapping[str, DirectoryProfile | None] | None = None
        report = RefreshReport(checked=len(names))
        if self._directory is not None:
            report.directory = "nobody to read"
        if self._directory is not None and names:
            try:
                profiles = await anyio.to_thread.run_sync(self._directory.lookup_many, names)
                report.directory = "read"
            except DirectoryUnavailable as exc:
                report.directory = f"unavailable: {exc.message}"
            profiles = _unless_implausible(profiles, report)
        done = await anyio.to_thread.run_sync(self._apply, profiles, report, force)
        if done is not None:
            LOGGER.info(
                "directory-refresh: %d checked, removed %s, inactive %s, handed over %s (%s)",
                report.checked,
                report.removed,
                report.inactive,
                report.handed_over,
                report.directory,
            )
        return done

    def _seconds_until_due(self) -> float:
        with self._sessions() as session:
            return self._wait(session).total_seconds()

    def _wait(self, session: Session) -> timedelta:
        last = session.scalar(select(func.max(AuditEvent.at)).where(AuditEvent.action == ACTION))
        if last is None:
            return timedelta(0)
        return max(timedelta(0), last + self._period - self._slack - datetime.now(UTC))

    def _directory_users(self) -> list[str]:
        with self._sessions() as session:
            query = select(User.name).where(User.directory.is_not(None), ~User.disabled)
            return list(session.scalars(query.order_by(User.name)))

    def _apply(
        self,
        profiles: Mapping[str, DirectoryProfile | None] | None,
        report: RefreshReport,
        force: bool,
    ) -> RefreshReport | None:
        with self._sessions.begin() as session:
            if not claim(session, REFRESH_LOCK) or (
                not force and self._wait(session) > timedelta(0)
            ):
                return None
            users = session.scalars(
                select(User).where(User.directory.is_not(None), ~User.disabled)
            ).all()
            for user in users:
                if profiles is None:
                    user.groups_stale = self._directory is not None
                elif user.name in profiles:
                    self._follow(session, user, profiles[user.name], report)
            self._inactive(session, report)
            record(
                session,
                actor=REFRESH.actor,
                action=ACTION,
                origin=SCHEDULE,
                checked=report.checked,
                removed=report.removed,
                inactive=report.inactive,
                handed_over=report.handed_over,
                directory=report.directory,
            )
            return report

    def _follow(
        self, session: Session, user: User, profile: DirectoryProfile | None, report: RefreshReport
    ) -> None:
        if profile is None:
            user.directory_removed_at = datetime.now(UTC)
            user.disabled = True
            record(
                session,
                actor=REFRESH.actor,
                action="user-disable",
                origin=SCHEDULE,
                user=user.name,
                reason="no longer in the directory",
            )
            report.removed.append(user.name)
            self._hand_over(session, user, "directory-removed", report)
            return
        # LDAP's groups, and the token's from the last sign-in: both are the directory's.
        groups = profile.groups | directory_accounts.claimed_groups(user)
        facts = directory_accounts.DirectoryFacts(
            profile.email, profile.full_name, profile.manager, groups
        )
        directory_accounts.update(
            session,
            user,
            facts,
            self._settings.directory_groups,
            actor=REFRESH.actor,
            origin=SCHEDULE,
        )

    def _inactive(self, session: Session, report: RefreshReport) -> None:
        days = self._settings.succession.max_inactive_days
        if days is None:
            return
        cutoff = datetime.now(UTC) - timedelta(days=days)
        stale = session.scalars(
            select(User).where(
                User.directory.is_not(None),
                ~User.disabled,
                or_(
                    User.last_sign_in_at < cutoff,
                    User.last_sign_in_at.is_(None) & (User.created_at < cutoff),
                ),
            )
        ).all()
        fallback = self._settings.succession.fallback_group
        for user in stale:
            # Nobody to take over: the inactive person stays the owner (they are
            # still enabled), rather than an orphan reported every period.
            if succession.default_successor(session, user, fallback)[0] is None:
                continue
            if self._hand_over(session, user, "inactive", report):
                report.inactive.append(user.name)

    def _hand_over(self, session: Session, user: User, reason: str, report: RefreshReport) -> bool:
        results = succession.hand_over(
            session,
            user,
            reason=reason,
            fallback_group=self._settings.succession.fallback_group,
            actor=REFRESH,
            origin=SCHEDULE,
        )
        report.handed_over += [result.project for result in results]
        return bool(results)


def _unless_implausible(
    profiles: Mapping[str, DirectoryProfile | None] | None, report: RefreshReport
) -> Mapping[str, DirectoryProfile | None] | None:
    """The profiles, or None (like a directory that is down: nothing changes) when
    too many people are missing at once to be true."""
    if profiles is None:
        return None
    missing = sum(1 for profile in profiles.values() if profile is None)
    if missing > MAX_REMOVED_ALWAYS and missing > MAX_REMOVED_SHARE * len(profiles):
        report.directory = (
            f"implausible: {missing} of {len(profiles)} people not found; nobody disabled "
            "(check [auth.ldap] base_dn and user_filter)"
        )
        LOGGER.warning("directory-refresh-refused: %s", report.directory)
        return None
    return profiles
