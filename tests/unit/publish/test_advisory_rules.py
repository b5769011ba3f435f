"""Advisory policies and accepted risks changed at runtime: admins only, validated,
audited, with a serial bump; on SQLite and PostgreSQL. The advisories are two
real records of the PyPA snapshot and one made-up malicious-package record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.advisories import AdvisoryException, AdvisoryPolicy
from packyard.db.audit import AuditEvent
from packyard.db.serial import read_serial
from packyard.errors import InvalidRequest, NotFound, PermissionDenied
from packyard.publish import accounts
from packyard.publish.advisory_rules import (
    accept,
    list_exceptions,
    list_policies,
    revoke,
    set_policy,
)
from packyard.settings import AdvisorySettings, UpstreamSettings
from tests.advisory_data import SNAPSHOT
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="root", is_admin=True)
PYPI = UpstreamSettings(url="https://pypi.test/simple/", name="pypi", advisories_policy="yank")
MIRROR = UpstreamSettings(url="https://mirror.test/simple/")
UPSTREAMS = (PYPI, MIRROR)
SETTINGS = AdvisorySettings(policy="hide", local_policy="warn")
MKDOCS = "PYSEC-2021-878"  # mkdocs 1.2.2; aliases CVE-2021-40978
MALICIOUS = {
    "id": "MAL-2024-0001",
    "modified": "2024-05-01T00:00:00Z",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "mkdocs"}, "versions": ["1.2.1"]}],
}


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    """alice is an admin, bob is not; mkdocs' record, django's first one and a MAL record."""
    local = make_local_store(tmp_path / "data", database_url)
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, admin=True, actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
    records = tmp_path / "records"
    records.mkdir()
    shutil.copy(SNAPSHOT / "mkdocs" / f"{MKDOCS}.yaml", records)
    (records / "MAL-2024-0001.json").write_text(json.dumps(MALICIOUS))
    import_entries(local.sessions, read_source(records), actor="test", source="test")
    return local


def user(session: Session, name: str, projects: frozenset[str] | None = None) -> Identity:
    found = session.scalars(select(User).where(User.name == name)).one()
    return Identity(
        kind="user", name=name, user_id=found.id, is_admin=found.is_admin, projects=projects
    )


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


def events(local: LocalStore) -> list[tuple[str, str, dict[str, object]]]:
    with local.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [
            (row.action, row.outcome, json.loads(row.detail))
            for row in rows
            if row.action.startswith("advisory-")
        ]


def policies(local: LocalStore) -> dict[str, tuple[str, str]]:
    with local.sessions() as session:
        found = list_policies(session, SETTINGS, UPSTREAMS)
    return {item.source: (item.policy, item.origin) for item in found}


def test_without_overrides_each_source_has_its_configured_policy(local: LocalStore) -> None:
    assert policies(local) == {
        "local": ("warn", "config"),
        "pypi": ("yank", "config"),
        "https://mirror.test/simple/": ("hide", "config"),
    }


def test_an_admin_sets_a_policy_audited_with_a_serial_bump_and_clears_it(
    local: LocalStore,
) -> None:
    before = serial(local)
    with local.sessions.begin() as session:
        result = set_policy(
            session, user(session, "alice"), "pypi", "deny", settings=SETTINGS, upstreams=UPSTREAMS
        )
    assert (result.source, result.policy, result.origin, result.configured) == (
        "pypi",
        "deny",
        "database",
        "yank",
    )
    assert result.by == "user:alice"
    assert serial(local) > before
    assert policies(local)["pypi"] == ("deny", "database")

    with local.sessions.begin() as session:  # by URL, back to the configuration
        cleared = set_policy(
            session,
            OPERATOR,
            "https://pypi.test/simple/",
            None,
            settings=SETTINGS,
            upstreams=UPSTREAMS,
        )
    assert (cleared.policy, cleared.origin) == ("yank", "config")
    with local.sessions() as session:
        assert session.scalars(select(AdvisoryPolicy)).all() == []
    assert [
        (action, detail["policy"], detail["previous"]) for action, _, detail in events(local)
    ] == [
        ("advisory-policy", "deny", None),
        ("advisory-policy", None, "deny"),
    ]


def test_setting_the_same_policy_again_moves_no_serial(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        set_policy(session, OPERATOR, "local", "hide", settings=SETTINGS, upstreams=UPSTREAMS)
    before = serial(local)
    with local.sessions.begin() as session:
        set_policy(session, OPERATOR, "local", "hide", settings=SETTINGS, upstreams=UPSTREAMS)
    assert serial(local) == before
    assert policies(local)["local"] == ("hide", "database")


@pytest.mark.parametrize(
    ("source", "policy", "message"),
    [
        ("npm", "deny", "Unknown source 'npm': a source is 'local', 'pypi'"),
        ("pypi", "block", "one of warn, yank, hide, deny, not 'block'"),
    ],
)
def test_an_unknown_source_or_policy_is_refused_with_what_there_is(
    local: LocalStore, source: str, policy: str, message: str
) -> None:
    with local.sessions.begin() as session, pytest.raises(InvalidRequest, match=message):
        set_policy(session, OPERATOR, source, policy, settings=SETTINGS, upstreams=UPSTREAMS)


def test_a_stored_policy_of_a_source_no_longer_configured_is_listed_and_clearable(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        set_policy(
            session,
            OPERATOR,
            "https://mirror.test/simple/",
            "deny",
            settings=SETTINGS,
            upstreams=UPSTREAMS,
        )
    with local.sessions() as session:
        found = list_policies(session, SETTINGS, (PYPI,))  # the mirror was removed
    orphan = found[-1]
    assert (orphan.source, orphan.policy, orphan.known) == (
        "https://mirror.test/simple/",
        "deny",
        False,
    )
    with local.sessions.begin() as session:
        set_policy(
            session,
            OPERATOR,
            "https://mirror.test/simple/",
            None,
            settings=SETTINGS,
            upstreams=(PYPI,),
        )
    with local.sessions() as session:
        assert session.scalars(select(AdvisoryPolicy)).all() == []


def test_only_admins_change_policies_and_exceptions(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        bob = user(session, "bob")
        with pytest.raises(PermissionDenied, match="only an admin"):
            set_policy(session, bob, "pypi", "warn", settings=SETTINGS, upstreams=UPSTREAMS)
        with pytest.raises(PermissionDenied):
            accept(session, bob, MKDOCS, "mkdocs", "fine")
        scoped = user(session, "alice", projects=frozenset({"mkdocs"}))
        with pytest.raises(PermissionDenied):  # a token limited to projects administers nothing
            accept(session, scoped, MKDOCS, None, "fine everywhere")


def test_an_admin_accepts_a_risk_audited_and_revokes_it(local: LocalStore) -> None:
    before = serial(local)
    with local.sessions.begin() as session:
        risk, created = accept(
            session, user(session, "alice"), MKDOCS, "MkDocs", "  offline docs  "
        )
    assert created
    assert (risk.advisory_id, risk.project, risk.reason, risk.by) == (
        MKDOCS,
        "mkdocs",
        "offline docs",
        "user:alice",
    )
    assert serial(local) > before
    with local.sessions.begin() as session:
        again, created = accept(session, OPERATOR, MKDOCS, "mkdocs", "reviewed again")
    assert not created
    assert again.reason == "reviewed again"
    with local.sessions() as session:
        assert [(r.advisory_id, r.project, r.reason) for r in list_exceptions(session)] == [
            (MKDOCS, "mkdocs", "reviewed again")
        ]

    with local.sessions.begin() as session:
        revoke(session, OPERATOR, MKDOCS, "mkdocs")
    with local.sessions() as session:
        assert session.scalars(select(AdvisoryException)).all() == []
    assert [
        (action, detail["advisory"], detail["scope"]) for action, _, detail in events(local)
    ] == [
        ("advisory-accept", MKDOCS, "mkdocs"),
        ("advisory-accept", MKDOCS, "mkdocs"),
        ("advisory-revoke", MKDOCS, "mkdocs"),
    ]


def test_a_risk_accepted_for_every_project_is_stored_as_a_star(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        risk, _ = accept(session, OPERATOR, MKDOCS, None, "reviewed")
    assert risk.project == "*"
    with local.sessions.begin() as session:
        revoke(session, OPERATOR, MKDOCS, "*")


@pytest.mark.parametrize(
    ("advisory_id", "project", "reason", "error", "message"),
    [
        (MKDOCS, "mkdocs", "   ", InvalidRequest, "a reason is required"),
        ("PYSEC-1999-1", None, "x", NotFound, "No advisory 'PYSEC-1999-1' is imported"),
        ("CVE-2021-40978", None, "x", InvalidRequest, f"an alias of {MKDOCS}"),
        (MKDOCS, "django", "x", InvalidRequest, "does not affect project 'django'"),
        (MKDOCS, "not a name!", "x", InvalidRequest, "is invalid"),
        ("MAL-2024-0001", "mkdocs", "x", InvalidRequest, "cannot be accepted"),
    ],
)
def test_a_wrong_acceptance_is_refused_with_a_message(
    local: LocalStore,
    advisory_id: str,
    project: str | None,
    reason: str,
    error: type[Exception],
    message: str,
) -> None:
    with local.sessions.begin() as session, pytest.raises(error, match=message):
        accept(session, OPERATOR, advisory_id, project, reason)


def test_revoking_what_was_never_accepted_is_not_found(local: LocalStore) -> None:
    with local.sessions.begin() as session, pytest.raises(NotFound, match="every project"):
        revoke(session, OPERATOR, MKDOCS, None)
