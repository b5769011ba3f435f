"""NameGuard: a new in-house name must be valid, not stdlib, not shadow nor imitate a public one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.models import Project
from packyard.errors import InvalidRequest, NotFound, PermissionDenied, UpstreamUnavailable
from packyard.model import ANONYMOUS
from packyard.publish.name_guard import (
    NameGuard,
    allow_name,
    allowed_names,
    disallow_name,
    ultranormalize,
)
from tests.builders import LocalStore, make_local_store
from tests.unit.fakes import MemoryRepository

ADMIN = Identity(kind="cli", name="root", is_admin=True)
SHADOW = "is already used by a public project on {label}: an in-house package of that name"


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    local = make_local_store(tmp_path / "data")
    with local.sessions.begin() as session:
        session.add(Project(name="acme-tools", display_name="acme-tools", created_at=now()))
    return local


@pytest.fixture
def pypi() -> MemoryRepository:
    return MemoryRepository("pypi", {"requests": {}, "public-lib": {}, "django": {}})


@pytest.fixture
def mirror() -> MemoryRepository:
    return MemoryRepository("mirror", {"internal-mirror-only": {}})


@pytest.fixture
def guard(local: LocalStore, pypi: MemoryRepository, mirror: MemoryRepository) -> NameGuard:
    return NameGuard(local.sessions, [pypi, mirror])


def now() -> datetime:
    return datetime.now(UTC)


def allow(local: LocalStore, name: str) -> None:
    with local.sessions.begin() as session:
        allow_name(session, ADMIN, name, "we own it")


@pytest.mark.parametrize(
    ("name", "folded"),
    [("Django", "djang0"), ("pub.Lic_lib", "pub11c11b"), ("I-O", "10"), ("acme", "acme")],
)
def test_ultranormalize_folds_like_pypi(name: str, folded: str) -> None:
    assert ultranormalize(name) == folded


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["acme-new", "Acme.Widgets", "a", "x9"])
async def test_a_free_valid_name_passes(guard: NameGuard, name: str) -> None:
    await guard.check(name)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["", "-acme", "acme-", "ac me", "acmé", "a/b", "\u212aelvin"])
async def test_an_invalid_name_is_refused(guard: NameGuard, name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await guard.check(name)
    assert caught.value.message == f"The name {name!r} is invalid."


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["os", "Asyncio", "email", "sqlite3", "distutils", "Tomllib"])
async def test_a_standard_library_name_is_refused_even_when_allowed(
    guard: NameGuard, local: LocalStore, name: str
) -> None:
    allow(local, name)
    with pytest.raises(InvalidRequest) as caught:
        await guard.check(name)
    assert caught.value.message == (
        f"The name {name!r} isn't allowed (conflict with Python Standard Library module name)."
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "label"),
    [("Requests", "pypi"), ("public_lib", "pypi"), ("internal.mirror-only", "mirror")],
)
async def test_a_name_used_upstream_is_refused_with_the_way_out(
    guard: NameGuard, name: str, label: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await guard.check(name)
    assert caught.value.message == (
        f"The name {name!r} {SHADOW.format(label=label)} would shadow it. "
        f"An administrator can allow it with `packyard name allow {name}`."
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "public"), [("djang0", "django"), ("pub1ic-1ib", "public-lib")])
async def test_a_look_alike_of_an_upstream_name_is_refused(
    guard: NameGuard, name: str, public: str
) -> None:
    with pytest.raises(
        InvalidRequest, match=f"too similar to {public!r}, a public project on pypi"
    ):
        await guard.check(name)


@pytest.mark.anyio
async def test_a_look_alike_of_an_in_house_name_is_refused(guard: NameGuard) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await guard.check("Acme_TooIs")
    assert caught.value.message == (
        "The name 'Acme_TooIs' is too similar to an existing project ('acme-tools')."
    )


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["requests", "djang0", "acme-too1s"])
async def test_an_allowed_name_passes(guard: NameGuard, local: LocalStore, name: str) -> None:
    allow(local, name.upper())
    await guard.check(name)


@pytest.mark.anyio
async def test_without_upstream_lists_only_exact_upstream_names_are_checked(
    local: LocalStore, pypi: MemoryRepository
) -> None:
    guard = NameGuard(local.sessions, [pypi], fold_upstream_lists=False)
    await guard.check("djang0")
    with pytest.raises(InvalidRequest, match="shadow"):
        await guard.check("django")
    with pytest.raises(InvalidRequest, match="too similar"):
        await guard.check("acme-t0ols")


@pytest.mark.anyio
async def test_an_upstream_that_is_down_refuses_the_name_for_now(
    guard: NameGuard, mirror: MemoryRepository
) -> None:
    mirror.down = True
    with pytest.raises(UpstreamUnavailable):
        await guard.check("acme-new")


@pytest.mark.anyio
async def test_an_upstream_list_is_folded_once_per_list_object(
    guard: NameGuard, pypi: MemoryRepository
) -> None:
    await guard.check("acme-one")
    listing = await pypi.list_projects(ANONYMOUS)
    first = await guard._folded_names(pypi, listing)
    await guard.check("acme-two")
    assert await guard._folded_names(pypi, listing) is first


def test_the_allow_list_is_managed_by_admins_and_audited(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        allow_name(session, ADMIN, "Requests", "in-house fork")
        allow_name(session, ADMIN, "django")
    with local.sessions() as session:
        assert [(row.name, row.reason, row.allowed_by) for row in allowed_names(session)] == [
            ("django", None, "cli:root"),
            ("requests", "in-house fork", "cli:root"),
        ]
    with local.sessions.begin() as session:
        disallow_name(session, ADMIN, "REQUESTS")
    with local.sessions() as session:
        assert [row.name for row in allowed_names(session)] == ["django"]
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        detail = session.scalars(select(AuditEvent.detail).order_by(AuditEvent.id)).first()
    assert actions == ["name-allow", "name-allow", "name-disallow"]
    assert detail is not None
    assert json.loads(detail) == {"reason": "in-house fork"}


def test_only_admins_manage_the_allow_list(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        user = User(name="alice", is_admin=False, created_at=now())
        session.add(user)
        session.flush()
        alice = Identity(kind="user", name="alice", user_id=user.id)
    with pytest.raises(PermissionDenied), local.sessions.begin() as session:
        allow_name(session, alice, "requests")
    with pytest.raises(NotFound), local.sessions.begin() as session:
        disallow_name(session, ADMIN, "requests")
    with pytest.raises(InvalidRequest), local.sessions.begin() as session:
        allow_name(session, ADMIN, "not valid")
