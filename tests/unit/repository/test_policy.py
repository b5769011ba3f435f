"""PolicyRepository: allow/deny of names and the cool-down of new upstream files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from packyard.errors import FileNotFound, ProjectNotFound
from packyard.model import (
    ANONYMOUS,
    DistFile,
    ProjectDetail,
)
from packyard.repository.base import Repository
from packyard.repository.policy import (
    HIDDEN_FILES,
    FileHidden,
    PolicyRepository,
    ProjectRefused,
    apply_policy,
)
from packyard.repository.priority import PriorityRepository
from packyard.serialize import file_version
from packyard.serialize import json as json_page
from packyard.settings import UpstreamSettings
from tests.unit.fakes import PageSource

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def wheel(name: str, version: str, uploaded: datetime | None) -> DistFile:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return DistFile(filename, hashes={"sha256": "ab" * 32}, size=10, upload_time=uploaded)


def page(name: str, *files: DistFile, source: str = "pypi") -> ProjectDetail:
    versions = tuple(dict.fromkeys(str(file_version(dist.filename)) for dist in files))
    return ProjectDetail(name, files, versions=versions, source=source)


def settings(**curation: object) -> UpstreamSettings:
    return UpstreamSettings.model_validate(
        {"url": "https://pypi.test/simple/", "name": "pypi", **curation}
    )


def policy(source: Repository, now: datetime = NOW, **curation: object) -> PolicyRepository:
    clock = {"now": now.timestamp()}
    repository = PolicyRepository(source, settings(**curation), clock=lambda: clock["now"])
    repository.clock_state = clock  # type: ignore[attr-defined]
    return repository


SOURCE = PageSource(
    "pypi",
    {
        "acme-tools": page("acme-tools", wheel("acme-tools", "1.0", NOW - timedelta(days=90))),
        "requests": page("requests", wheel("requests", "2.0", NOW - timedelta(days=90))),
        "evil-pkg": page("evil-pkg", wheel("evil-pkg", "1.0", NOW - timedelta(days=90))),
    },
)


@pytest.mark.anyio
@pytest.mark.parametrize("glob", ["evil-*", "EVIL_*", "evil.pkg"])
async def test_a_denied_name_is_not_found_with_the_matching_entry(glob: str) -> None:
    repository = policy(SOURCE, deny=[glob])
    with pytest.raises(ProjectRefused, match="deny-list") as raised:
        await repository.get_project("evil-pkg", ANONYMOUS)
    assert isinstance(raised.value, ProjectNotFound)
    with pytest.raises(ProjectRefused):
        await repository.get_file("evil-pkg", "evil_pkg-1.0-py3-none-any.whl", ANONYMOUS)
    assert (await repository.get_project("requests", ANONYMOUS)) is SOURCE.pages["requests"]


@pytest.mark.anyio
async def test_an_allow_list_lets_only_matching_names_through_and_deny_wins() -> None:
    repository = policy(SOURCE, allow=["acme-*", "evil-*"], deny=["evil-pkg"])
    assert (await repository.get_project("acme-tools", ANONYMOUS)).name == "acme-tools"
    with pytest.raises(ProjectRefused, match="allow-list"):
        await repository.get_project("requests", ANONYMOUS)
    with pytest.raises(ProjectRefused, match="deny-list"):
        await repository.get_project("evil-pkg", ANONYMOUS)


@pytest.mark.anyio
async def test_the_project_list_drops_refused_names_and_keeps_its_identity() -> None:
    repository = policy(SOURCE, deny=["evil-*"])
    first = await repository.list_projects(ANONYMOUS)
    assert [entry.name for entry in first.projects] == ["acme-tools", "requests"]
    assert await repository.list_projects(ANONYMOUS) is first


@pytest.mark.anyio
async def test_a_deny_blocks_only_its_own_upstream_in_the_priority_merge() -> None:
    mirror = PageSource("mirror", {"evil-pkg": page("evil-pkg", source="mirror")})
    merged = PriorityRepository([policy(SOURCE, deny=["evil-*"]), mirror])
    assert (await merged.get_project("evil-pkg", ANONYMOUS)).source == "mirror"


OLD = wheel("fresh-lib", "1.0", NOW - timedelta(days=30))
NEW_WHEEL = wheel("fresh-lib", "2.0", NOW - timedelta(days=2))
NEW_SDIST = DistFile("fresh_lib-2.0.tar.gz", size=5, upload_time=NOW - timedelta(days=1))
UNDATED = wheel("fresh-lib", "1.5", None)
FRESH = PageSource("pypi", {"fresh-lib": page("fresh-lib", OLD, UNDATED, NEW_WHEEL, NEW_SDIST)})


@pytest.mark.anyio
async def test_the_cool_down_hides_young_and_undated_files_with_reasons() -> None:
    detail = await policy(FRESH, cooldown_days=7).get_project("fresh-lib", ANONYMOUS)
    assert [dist.filename for dist in detail.files] == [OLD.filename]
    assert detail.versions == ("1.0",)
    hidden = {entry["filename"]: entry["reason"] for entry in detail.private[HIDDEN_FILES]}  # type: ignore[attr-defined]
    assert set(hidden) == {UNDATED.filename, NEW_WHEEL.filename, NEW_SDIST.filename}
    assert "no upload time" in hidden[UNDATED.filename]
    assert "cool-down of 7 days" in hidden[NEW_WHEEL.filename]
    assert "visible from 2026-03-15T12:00:00Z" in hidden[NEW_WHEEL.filename]
    shown = json.loads(json_page.render_project_detail(detail))
    assert [entry["filename"] for entry in shown["_hidden-files"]] == list(hidden)
    assert shown["versions"] == ["1.0"]


@pytest.mark.anyio
async def test_a_version_with_a_visible_file_stays_listed() -> None:
    old_sdist = DistFile("fresh_lib-2.0.tar.gz", size=5, upload_time=NOW - timedelta(days=30))
    source = PageSource("pypi", {"fresh-lib": page("fresh-lib", NEW_WHEEL, old_sdist)})
    detail = await policy(source, cooldown_days=7).get_project("fresh-lib", ANONYMOUS)
    assert [dist.filename for dist in detail.files] == [old_sdist.filename]
    assert detail.versions == ("2.0",)


@pytest.mark.anyio
async def test_a_hidden_file_and_its_metadata_cannot_be_fetched() -> None:
    repository = policy(FRESH, cooldown_days=7)
    with pytest.raises(FileHidden, match="hidden: cool-down of 7 days") as raised:
        await repository.get_file("fresh-lib", NEW_WHEEL.filename, ANONYMOUS)
    assert isinstance(raised.value, FileNotFound)
    with pytest.raises(FileHidden):
        await repository.get_file("fresh-lib", NEW_WHEEL.filename + ".metadata", ANONYMOUS)
    served = await repository.get_file("fresh-lib", OLD.filename, ANONYMOUS)
    assert served.filename == OLD.filename


@pytest.mark.anyio
async def test_the_same_page_comes_back_until_a_cool_down_ends() -> None:
    repository = policy(FRESH, cooldown_days=7)
    first = await repository.get_project("fresh-lib", ANONYMOUS)
    repository.clock_state["now"] += 3600  # type: ignore[attr-defined]
    assert await repository.get_project("fresh-lib", ANONYMOUS) is first
    # NEW_WHEEL (2 days old) leaves its 7-day cool-down after 5 more days.
    repository.clock_state["now"] = (NOW + timedelta(days=5, seconds=1)).timestamp()  # type: ignore[attr-defined]
    later = await repository.get_project("fresh-lib", ANONYMOUS)
    assert later is not first
    assert NEW_WHEEL.filename in {dist.filename for dist in later.files}
    assert await repository.get_project("fresh-lib", ANONYMOUS) is later
    await repository.get_file("fresh-lib", NEW_WHEEL.filename, ANONYMOUS)


@pytest.mark.anyio
async def test_a_page_with_nothing_to_hide_is_passed_through() -> None:
    repository = policy(SOURCE, cooldown_days=7)
    assert await repository.get_project("requests", ANONYMOUS) is SOURCE.pages["requests"]


def test_apply_policy_wraps_only_when_something_is_curated() -> None:
    assert apply_policy(SOURCE, settings()) is SOURCE
    assert isinstance(apply_policy(SOURCE, settings(deny=["x"])), PolicyRepository)
    assert isinstance(apply_policy(SOURCE, settings(cooldown_days=1)), PolicyRepository)
