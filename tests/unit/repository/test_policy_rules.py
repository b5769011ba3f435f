"""PolicyRepository with the rules admins store at runtime, on SQLite and PostgreSQL:
configuration ∪ database, the serial change picked up on the next request, the rows
read once per serial, and pages kept by identity while the effective policy holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio.lowlevel
import pytest

from packyard.auth.identity import Identity
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.db.freshness import PollingSerialWatcher
from packyard.db.serial import bump_serial
from packyard.model import (
    ANONYMOUS,
    DistFile,
    ProjectDetail,
)
from packyard.publish.cooldown_exemptions import exempt, unexempt
from packyard.publish.policies import add_rule, remove_rule, set_cooldown
from packyard.repository.policy import (
    HIDDEN_FILES,
    FileHidden,
    PolicyRepository,
    ProjectRefused,
    apply_policy,
)
from packyard.repository.policy_rules import StoredRules, StoredRulesReader
from packyard.settings import UpstreamSettings
from tests.builders import LocalStore, make_local_store
from tests.unit.fakes import PageSource

ADMIN = Identity(kind="cli", name="root", is_admin=True)
PYPI = UpstreamSettings(url="https://pypi.test/simple/", name="pypi", deny=("evil-*",))
OTHER = UpstreamSettings(url="https://other.test/simple/", name="other")
UPSTREAMS = (PYPI, OTHER)
NOW = datetime.now(UTC)
OLD_WHEEL = "public_lib-1.0-py3-none-any.whl"
NEW_WHEEL = "public_lib-2.0-py3-none-any.whl"


def pages() -> dict[str, ProjectDetail]:
    """The upstream's fixed pages: an old and a new wheel of each project."""
    old = DistFile(OLD_WHEEL, hashes={"sha256": "ab" * 32}, size=1, upload_time=NOW - timedelta(30))
    new = DistFile(NEW_WHEEL, hashes={"sha256": "cd" * 32}, size=1, upload_time=NOW - timedelta(1))
    return {
        name: ProjectDetail(name, (old, new), versions=("1.0", "2.0"), source="pypi")
        for name in ("public-lib", "evil-pkg", "acme-core")
    }


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> Iterator[LocalStore]:
    local = make_local_store(tmp_path, database_url)
    yield local
    local.engine.dispose()


def reader(local: LocalStore, upstream: UpstreamSettings = PYPI) -> StoredRulesReader:
    # Interval 0: every check re-reads the serial, so a change made through any
    # engine (this test's, or "another process's") is seen at once on both databases.
    watcher = PollingSerialWatcher(local.engine, interval=0)
    return StoredRulesReader(local.sessions, upstream.label, watcher=watcher)


@pytest.fixture
async def policy(local: LocalStore) -> AsyncIterator[PolicyRepository]:
    repository = PolicyRepository(PageSource("pypi", pages()), PYPI, rules=reader(local))
    yield repository
    await repository.aclose()


async def change(local: LocalStore, *changes: tuple[str, ...]) -> None:
    """Admin changes through the publish service in one transaction, then one turn
    of the event loop (the SQLite watcher checks once per turn)."""
    with local.sessions.begin() as session:
        for action, upstream, *args in changes:
            if action == "exempt":
                exempt(session, ADMIN, upstream, args[0], "an urgent fix", upstreams=UPSTREAMS)
            elif action == "unexempt":
                unexempt(session, ADMIN, upstream, args[0], upstreams=UPSTREAMS)
            elif action == "cooldown":
                days = None if args[0] == "default" else float(args[0])
                set_cooldown(session, ADMIN, upstream, days, upstreams=UPSTREAMS)
            elif action == "remove":
                remove_rule(session, ADMIN, upstream, args[0], args[1], upstreams=UPSTREAMS)
            else:
                add_rule(session, ADMIN, upstream, action, args[0], upstreams=UPSTREAMS)
    await anyio.lowlevel.checkpoint()


async def bump_elsewhere(local: LocalStore) -> None:
    """An unrelated write (an upload, a yank), committed by another engine."""
    engine = create_database_engine(local.engine.url.render_as_string(hide_password=False))
    with session_factory_for(engine).begin() as session:
        bump_serial(session)
    engine.dispose()
    await anyio.lowlevel.checkpoint()


async def names(policy: PolicyRepository) -> list[str]:
    return [entry.name for entry in (await policy.list_projects(ANONYMOUS)).projects]


@pytest.mark.anyio
async def test_a_stored_deny_applies_at_once_on_top_of_the_configured_one(
    policy: PolicyRepository, local: LocalStore
) -> None:
    assert (await policy.get_project("public-lib", ANONYMOUS)).name == "public-lib"
    await change(local, ("deny", "pypi", "Public_*"))

    with pytest.raises(ProjectRefused, match="'public-\\*' of upstream pypi"):
        await policy.get_project("public-lib", ANONYMOUS)
    with pytest.raises(ProjectRefused):
        await policy.get_file("public-lib", OLD_WHEEL, ANONYMOUS)
    with pytest.raises(ProjectRefused, match="'evil-\\*'"):  # the configured deny still holds
        await policy.get_project("evil-pkg", ANONYMOUS)
    assert await names(policy) == ["acme-core"]

    await change(local, ("remove", "pypi", "deny", "public-*"))
    assert (await policy.get_project("public-lib", ANONYMOUS)).name == "public-lib"
    assert await names(policy) == ["public-lib", "acme-core"]


@pytest.mark.anyio
async def test_stored_allow_entries_join_the_configured_allow_list(local: LocalStore) -> None:
    configured = PYPI.model_copy(update={"allow": ("acme-*",)})
    policy = PolicyRepository(PageSource("pypi", pages()), configured, rules=reader(local))
    try:
        assert await names(policy) == ["acme-core"]
        await change(local, ("allow", "pypi", "public-lib"))
        assert await names(policy) == ["public-lib", "acme-core"]
        with pytest.raises(ProjectRefused, match="evil-"):  # deny wins over the allow-list
            await policy.get_project("evil-pkg", ANONYMOUS)
    finally:
        await policy.aclose()


@pytest.mark.anyio
async def test_a_stored_cool_down_overrides_the_configured_one_until_reset(
    local: LocalStore,
) -> None:
    configured = PYPI.model_copy(update={"cooldown_days": 7})
    policy = PolicyRepository(PageSource("pypi", pages()), configured, rules=reader(local))
    try:
        page = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in page.files] == [OLD_WHEEL]

        await change(local, ("cooldown", "pypi", "0"))
        page = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in page.files] == [OLD_WHEEL, NEW_WHEEL]
        assert (await policy.get_file("public-lib", NEW_WHEEL, ANONYMOUS)).sha256

        await change(local, ("cooldown", "pypi", "default"))
        page = await policy.get_project("public-lib", ANONYMOUS)
        hidden = page.private[HIDDEN_FILES]
        assert isinstance(hidden, list)
        assert [entry["filename"] for entry in hidden] == [NEW_WHEEL]
        with pytest.raises(FileHidden, match="cool-down of 7 days"):
            await policy.get_file("public-lib", NEW_WHEEL, ANONYMOUS)
    finally:
        await policy.aclose()


@pytest.mark.anyio
async def test_an_exempt_project_skips_the_cool_down_and_only_that_project(
    local: LocalStore,
) -> None:
    configured = PYPI.model_copy(update={"cooldown_days": 7})
    policy = PolicyRepository(PageSource("pypi", pages()), configured, rules=reader(local))
    try:
        held = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in held.files] == [OLD_WHEEL]

        await change(local, ("exempt", "pypi", "Public_Lib"))
        page = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in page.files] == [OLD_WHEEL, NEW_WHEEL]
        assert HIDDEN_FILES not in page.private
        assert (await policy.get_file("public-lib", NEW_WHEEL, ANONYMOUS)).sha256
        assert (await policy.get_file("public-lib", NEW_WHEEL + ".metadata", ANONYMOUS)).sha256
        other = await policy.get_project("acme-core", ANONYMOUS)
        assert [dist.filename for dist in other.files] == [OLD_WHEEL]
        with pytest.raises(FileHidden):
            await policy.get_file("acme-core", NEW_WHEEL, ANONYMOUS)

        await change(local, ("unexempt", "pypi", "public-lib"))
        again = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in again.files] == [OLD_WHEEL]
        with pytest.raises(FileHidden, match="cool-down of 7 days"):
            await policy.get_file("public-lib", NEW_WHEEL, ANONYMOUS)
    finally:
        await policy.aclose()


@pytest.mark.anyio
async def test_an_exemption_does_not_lift_a_deny(
    policy: PolicyRepository, local: LocalStore
) -> None:
    await change(local, ("exempt", "pypi", "evil-pkg"))
    with pytest.raises(ProjectRefused):
        await policy.get_project("evil-pkg", ANONYMOUS)


@pytest.mark.anyio
async def test_an_exemption_on_another_upstream_changes_nothing_here(local: LocalStore) -> None:
    configured = PYPI.model_copy(update={"cooldown_days": 7})
    policy = PolicyRepository(PageSource("pypi", pages()), configured, rules=reader(local))
    try:
        await change(local, ("exempt", "other", "public-lib"))
        page = await policy.get_project("public-lib", ANONYMOUS)
        assert [dist.filename for dist in page.files] == [OLD_WHEEL]
    finally:
        await policy.aclose()


@pytest.mark.anyio
async def test_pages_keep_their_identity_while_the_effective_policy_holds(
    policy: PolicyRepository, local: LocalStore
) -> None:
    await change(local, ("cooldown", "pypi", "3"))
    page = await policy.get_project("public-lib", ANONYMOUS)
    listed = await policy.list_projects(ANONYMOUS)
    assert [dist.filename for dist in page.files] == [OLD_WHEEL]

    await bump_elsewhere(local)  # an upload or a yank: the serial moves
    await change(local, ("deny", "other", "public-*"))  # another upstream's rule
    await change(local, ("deny", "pypi", "Evil_*"))  # already configured: nothing changes
    assert await policy.get_project("public-lib", ANONYMOUS) is page
    assert await policy.list_projects(ANONYMOUS) is listed

    await change(local, ("deny", "pypi", "acme-*"))  # the names change, the cool-down not
    assert await policy.get_project("public-lib", ANONYMOUS) is page
    assert await policy.list_projects(ANONYMOUS) is not listed

    await change(local, ("cooldown", "pypi", "0.5"))  # the cool-down changes: a new page
    renewed = await policy.get_project("public-lib", ANONYMOUS)
    assert renewed is not page
    assert [dist.filename for dist in renewed.files] == [OLD_WHEEL, NEW_WHEEL]


@pytest.mark.anyio
async def test_rows_are_read_once_per_serial_change(
    local: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = reader(local)
    policy = PolicyRepository(PageSource("pypi", pages()), PYPI, rules=rules)
    try:
        await policy.get_project("public-lib", ANONYMOUS)
        loads = 0
        original = rules._load

        def counting() -> StoredRules:
            nonlocal loads
            loads += 1
            return original()

        monkeypatch.setattr(rules._rules, "_load", counting)
        for _ in range(5):
            await policy.get_project("public-lib", ANONYMOUS)
            await anyio.lowlevel.checkpoint()
        assert loads == 0
        await bump_elsewhere(local)
        await policy.get_project("public-lib", ANONYMOUS)
        await policy.get_project("acme-core", ANONYMOUS)
        assert loads == 1
    finally:
        await policy.aclose()


@pytest.mark.anyio
async def test_the_reader_returns_the_same_rules_object_while_they_are_equal(
    local: LocalStore,
) -> None:
    rules = reader(local)
    try:
        first = await rules.current()
        await bump_elsewhere(local)
        assert await rules.current() is first
        await change(local, ("deny", "pypi", "x-*"), ("cooldown", "pypi", "2"))
        assert await rules.current() == StoredRules(deny=("x-*",), cooldown_days=2)
    finally:
        rules.close()


def test_apply_policy_always_wraps_when_stored_rules_may_come(local: LocalStore) -> None:
    source = PageSource("pypi", pages())
    bare = UpstreamSettings(url="https://pypi.test/simple/")
    assert apply_policy(source, bare) is source
    rules = reader(local, bare)
    try:
        assert isinstance(apply_policy(source, bare, rules), PolicyRepository)
    finally:
        rules.close()
