"""AdvisoryRepository: each policy on pages and downloads, for an upstream and for
in-house packages, accepted risks, malicious packages, runtime policies over the
configuration, and the identity of unchanged pages.

The advisories are real records of the PyPA snapshot, imported as an operator
would: mkdocs 1.2.2 is affected by PYSEC-2021-878 (introduced 1.2.2, fixed
1.2.3), channels 3.0.2 by PYSEC-2021-113 (3.0.0 up to 3.0.3). mkdocs comes from
an upstream labelled `pypi`, channels is an in-house package.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.lowlevel
import pytest
import yaml
from packaging.version import InvalidVersion, Version

from packyard.advisories.importing import import_entries
from packyard.advisories.index import Advisories, AdvisoryIndexReader
from packyard.advisories.records import read_record
from packyard.advisories.sources import read_source
from packyard.auth.identity import Identity
from packyard.db.serial import bump_serial
from packyard.errors import FileDenied, FileNotFound
from packyard.model import ANONYMOUS, DistFile, ProjectDetail
from packyard.publish import advisory_rules
from packyard.publish.importer import import_directory
from packyard.publish.yanks import yank
from packyard.repository.advisories import AdvisoryRepository, ConfiguredPolicies
from packyard.repository.advisory_verdicts import describe, judge
from packyard.repository.local import LocalRepository
from packyard.repository.priority import PriorityRepository
from packyard.repository.yank import YankRepository
from packyard.settings import AdvisorySettings, UpstreamSettings
from tests.advisory_data import SNAPSHOT
from tests.builders import LocalStore, build_wheel, make_local_store
from tests.unit.fakes import MemoryRepository

ADMIN = Identity(kind="cli", name="root", is_admin=True)
MKDOCS = "PYSEC-2021-878"
CHANNELS = "PYSEC-2021-113"
AFFECTED_WHEEL = "mkdocs-1.2.2-py3-none-any.whl"
AFFECTED_SDIST = "mkdocs-1.2.2.tar.gz"
CLEAN_WHEEL = "mkdocs-1.2.1-py3-none-any.whl"
UPSTREAM = {
    "mkdocs": {
        CLEAN_WHEEL: b"clean",
        AFFECTED_WHEEL: b"affected",
        AFFECTED_SDIST: b"affected-source",
    },
    "clean-lib": {"clean_lib-1.0-py3-none-any.whl": b"clean"},
}
UPSTREAMS = (UpstreamSettings(url="https://pypi.example/simple/", name="pypi"),)
MALICIOUS = {
    "id": "MAL-2024-0001",
    "modified": "2024-05-01T00:00:00Z",
    "summary": "Malicious code in mkdocs (a made-up record of the MAL database's shape)",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "mkdocs"}, "versions": ["1.2.1"]}],
}


@pytest.fixture
async def local(tmp_path: Path) -> LocalStore:
    """The site's database with two real records imported, and in-house channels."""
    local = make_local_store(tmp_path / "data")
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "channels", "2.4.0")
    build_wheel(dists, "channels", "3.0.2")
    assert (await import_directory(dists, local.sessions, local.store)).ok
    records = tmp_path / "records"
    records.mkdir()
    shutil.copy(SNAPSHOT / "mkdocs" / f"{MKDOCS}.yaml", records)
    shutil.copy(SNAPSHOT / "channels" / f"{CHANNELS}.yaml", records)
    report = import_entries(local.sessions, read_source(records), actor="test", source="test")
    assert sorted(report.added) == [CHANNELS, MKDOCS]
    return local


@pytest.fixture
def upstream() -> MemoryRepository:
    return MemoryRepository("pypi", UPSTREAM)


class Site:
    """The chain `AdvisoryRepository(YankRepository(PriorityRepository([local, pypi])))`."""

    def __init__(self, local: LocalStore, upstream: MemoryRepository) -> None:
        self.local = local
        self.upstream = upstream
        self.reader = AdvisoryIndexReader(local.sessions)
        merged = PriorityRepository([LocalRepository(local.sessions, local.store), upstream])
        self.yanks = YankRepository(merged, local.sessions)
        self.configure()

    def configure(self, policy: str = "warn", local: str = "warn", pypi: str | None = None) -> None:
        settings = AdvisorySettings(policy=policy, local_policy=local)  # type: ignore[arg-type]
        upstreams = tuple(u.model_copy(update={"advisories_policy": pypi}) for u in UPSTREAMS)
        self.chain = AdvisoryRepository(
            self.yanks, self.reader, ConfiguredPolicies.of(settings, upstreams)
        )

    async def page(self, name: str) -> ProjectDetail:
        return await self.chain.get_project(name, ANONYMOUS)

    async def change(self, action: str, *args: str | None) -> None:
        """A runtime change through the domain service, then a turn of the loop
        (the serial watcher checks once per turn)."""
        with self.local.sessions.begin() as session:
            if action == "policy":
                source, policy = args
                assert source is not None
                advisory_rules.set_policy(
                    session,
                    ADMIN,
                    source,
                    policy,
                    settings=AdvisorySettings(),
                    upstreams=UPSTREAMS,
                )
            elif action == "accept":
                advisory_id, project = args
                assert advisory_id is not None
                advisory_rules.accept(
                    session, ADMIN, advisory_id, project, "reviewed: not reachable"
                )
            elif action == "yank":
                project, version = args
                assert project is not None
                assert version is not None
                yank(session, ADMIN, project, version, None, "broken build")
            else:
                bump_serial(session)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
async def site(local: LocalStore, upstream: MemoryRepository) -> AsyncIterator[Site]:
    site = Site(local, upstream)
    yield site
    await site.yanks.aclose()
    site.reader.close()


def files(page: ProjectDetail) -> dict[str, bool | str]:
    return {dist.filename: dist.yanked for dist in page.files}


def hidden(page: ProjectDetail) -> dict[str, str]:
    listed = page.private.get("hidden-files", [])
    assert isinstance(listed, list)
    return {item["filename"]: item["reason"] for item in listed}


def listed(page: ProjectDetail) -> dict[str, tuple[str, list[str]]]:
    """The page's `advisories` list: version -> (action, enforced ids)."""
    found = page.private.get("advisories", [])
    assert isinstance(found, list)
    return {item["version"]: (item["action"], item["ids"]) for item in found}


@pytest.mark.anyio
async def test_a_project_no_advisory_names_passes_through_as_the_same_object(
    site: Site, upstream: MemoryRepository
) -> None:
    site.configure(policy="deny", local="deny")
    page = await site.page("clean-lib")
    assert page is await upstream.get_project("clean-lib", ANONYMOUS)
    assert "advisories" not in page.private


@pytest.mark.anyio
async def test_warn_keeps_every_file_and_lists_the_affected_ones(site: Site) -> None:
    page = await site.page("mkdocs")

    assert files(page) == {CLEAN_WHEEL: False, AFFECTED_WHEEL: False, AFFECTED_SDIST: False}
    assert listed(page) == {"1.2.2": ("warn", [MKDOCS])}
    resource = await site.chain.get_file("mkdocs", AFFECTED_WHEEL, ANONYMOUS)
    assert resource.advisories is not None
    assert (resource.advisories.ids, resource.advisories.source) == ((MKDOCS,), "pypi")
    assert resource.advisories.action == "warn"
    clean = await site.chain.get_file("mkdocs", CLEAN_WHEEL, ANONYMOUS)
    assert clean.advisories is None


@pytest.mark.anyio
async def test_yank_serves_affected_files_yanked_with_the_ids_and_still_downloadable(
    site: Site,
) -> None:
    site.configure(pypi="yank")
    page = await site.page("mkdocs")

    reason = f"known vulnerability {MKDOCS}"
    assert files(page) == {CLEAN_WHEEL: False, AFFECTED_WHEEL: reason, AFFECTED_SDIST: reason}
    assert listed(page)["1.2.2"] == ("yank", [MKDOCS])
    resource = await site.chain.get_file("mkdocs", AFFECTED_WHEEL, ANONYMOUS)  # a pin fetches it
    assert resource.advisories is not None
    assert resource.advisories.action == "yank"


@pytest.mark.anyio
async def test_a_file_yanked_already_keeps_its_own_yank(site: Site) -> None:
    site.configure(pypi="yank")
    await site.change("yank", "mkdocs", "1.2.2")

    page = await site.page("mkdocs")

    assert files(page)[AFFECTED_WHEEL] == "broken build"
    assert listed(page)["1.2.2"] == ("yank", [MKDOCS])


@pytest.mark.anyio
async def test_hide_leaves_affected_files_out_with_the_reason_but_their_url_still_serves(
    site: Site,
) -> None:
    site.configure(policy="hide")
    page = await site.page("mkdocs")

    assert files(page) == {CLEAN_WHEEL: False}
    reason = f"known vulnerability {MKDOCS}"
    assert hidden(page) == {AFFECTED_WHEEL: reason, AFFECTED_SDIST: reason}
    assert listed(page)["1.2.2"] == ("hide", [MKDOCS])
    resource = await site.chain.get_file("mkdocs", AFFECTED_WHEEL, ANONYMOUS)  # a lock file's URL
    assert resource.advisories is not None
    assert resource.advisories.action == "hide"


@pytest.mark.anyio
async def test_deny_hides_and_refuses_the_file_and_its_metadata_naming_the_advisory(
    site: Site,
) -> None:
    site.configure(policy="deny")
    page = await site.page("mkdocs")
    assert files(page) == {CLEAN_WHEEL: False}
    assert listed(page)["1.2.2"] == ("deny", [MKDOCS])

    for filename in (AFFECTED_WHEEL, AFFECTED_WHEEL + ".metadata", AFFECTED_SDIST):
        with pytest.raises(FileDenied) as refused:
            await site.chain.get_file("mkdocs", filename, ANONYMOUS)
        assert MKDOCS in refused.value.message
        assert "policy 'deny' of source pypi" in refused.value.message
        assert (refused.value.advisories, refused.value.source) == ((MKDOCS,), "pypi")
    assert (await site.chain.get_file("mkdocs", CLEAN_WHEEL, ANONYMOUS)).advisories is None
    with pytest.raises(FileNotFound):  # a file that does not exist is still a 404
        await site.chain.get_file("mkdocs", "mkdocs-9.9-py3-none-any.whl", ANONYMOUS)


@pytest.mark.anyio
async def test_local_policy_applies_to_in_house_packages_only(site: Site) -> None:
    site.configure(policy="warn", local="deny")

    channels = await site.page("channels")
    assert files(channels) == {"channels-2.4.0-py3-none-any.whl": False}
    assert hidden(channels) == {
        "channels-3.0.2-py3-none-any.whl": f"known vulnerability {CHANNELS}"
    }
    with pytest.raises(FileDenied, match="policy 'deny' of source local"):
        await site.chain.get_file("channels", "channels-3.0.2-py3-none-any.whl", ANONYMOUS)
    assert AFFECTED_WHEEL in files(await site.page("mkdocs"))  # upstream: warn


@pytest.mark.anyio
async def test_a_runtime_policy_beats_the_configuration_until_it_is_cleared(site: Site) -> None:
    site.configure(pypi="yank")
    assert files(await site.page("mkdocs"))[AFFECTED_WHEEL]

    await site.change("policy", "pypi", "hide")
    assert AFFECTED_WHEEL in hidden(await site.page("mkdocs"))
    await site.change("policy", "local", "deny")
    with pytest.raises(FileDenied):
        await site.chain.get_file("channels", "channels-3.0.2-py3-none-any.whl", ANONYMOUS)

    await site.change("policy", "pypi", None)
    page = await site.page("mkdocs")
    assert files(page)[AFFECTED_WHEEL] == f"known vulnerability {MKDOCS}"


@pytest.mark.anyio
async def test_an_accepted_risk_lifts_the_policy_and_stays_listed(site: Site) -> None:
    site.configure(policy="deny", local="deny")
    await site.change("accept", MKDOCS, "mkdocs")

    page = await site.page("mkdocs")

    assert files(page) == {CLEAN_WHEEL: False, AFFECTED_WHEEL: False, AFFECTED_SDIST: False}
    assert listed(page)["1.2.2"] == ("accepted", [])
    found = page.private["advisories"]
    assert isinstance(found, list)
    assert found[0]["accepted"] == [MKDOCS]
    resource = await site.chain.get_file("mkdocs", AFFECTED_WHEEL, ANONYMOUS)
    assert resource.advisories is not None
    assert (resource.advisories.action, resource.advisories.ids) == ("accepted", (MKDOCS,))
    with pytest.raises(FileDenied):  # accepted for mkdocs only
        await site.chain.get_file("channels", "channels-3.0.2-py3-none-any.whl", ANONYMOUS)
    await site.change("accept", CHANNELS, None)  # every project
    assert "channels-3.0.2-py3-none-any.whl" in files(await site.page("channels"))


@pytest.mark.anyio
async def test_a_malicious_package_is_denied_whatever_the_policy(
    site: Site, local: LocalStore, tmp_path: Path
) -> None:
    record = tmp_path / "mal" / "MAL-2024-0001.json"
    record.parent.mkdir()
    record.write_text(json.dumps(MALICIOUS))
    import_entries(local.sessions, read_source(record.parent), actor="test", source="test")
    await anyio.lowlevel.checkpoint()

    page = await site.page("mkdocs")  # policy warn

    assert CLEAN_WHEEL not in files(page)
    assert hidden(page)[CLEAN_WHEEL] == "malicious package MAL-2024-0001"
    assert listed(page)["1.2.1"] == ("deny", ["MAL-2024-0001"])
    assert listed(page)["1.2.2"] == ("warn", [MKDOCS])
    with pytest.raises(FileDenied, match="always refused"):
        await site.chain.get_file("mkdocs", CLEAN_WHEEL, ANONYMOUS)


@pytest.mark.anyio
async def test_same_input_page_and_same_decisions_give_the_same_object(
    site: Site, upstream: MemoryRepository
) -> None:
    site.configure(pypi="yank")
    first = await site.page("mkdocs")
    assert await site.page("mkdocs") is first

    await site.change("bump")  # an unrelated write: the serial moves, nothing else
    assert await site.page("mkdocs") is first
    await site.change("accept", CHANNELS, "channels")  # another project's exception
    assert await site.page("mkdocs") is first

    await site.change("policy", "pypi", "hide")
    changed = await site.page("mkdocs")
    assert changed is not first
    assert await site.page("mkdocs") is changed


def test_a_reason_names_ten_ids_then_counts_and_puts_malicious_records_first() -> None:
    ids = tuple(f"PYSEC-2024-{n}" for n in range(12))
    assert describe(ids[:1]) == "known vulnerability PYSEC-2024-0"
    assert describe(ids).endswith("PYSEC-2024-9 and 2 more")
    assert describe(("MAL-2024-1", "PYSEC-1")) == (
        "malicious package MAL-2024-1; known vulnerability PYSEC-1"
    )


@pytest.mark.parametrize("project", ["django", "jinja2", "requests", "pillow", "tensorflow"])
def test_a_page_is_judged_as_each_version_asked_alone_would_be(project: str) -> None:
    """`judge` finds the records of all the page's versions at once (sorted, bisected);
    each file must get exactly the ids `Advisories.affecting` gives its version alone,
    over real records: listed versions, ranges, last_affected, pre-releases."""
    records = tuple(
        read_record(yaml.safe_load(path.read_bytes()))
        for path in sorted((SNAPSHOT / project).glob("*.yaml"))
    )
    state = Advisories(1, {project: records})
    listed = {v for r in records for e in r.data["affected"] for v in e.get("versions", [])}  # type: ignore[attr-defined]
    versions = {str(Version(v)) for v in listed if _pep440(v)} | {"0.0.1", "99.0", "1.0rc1"}
    page = ProjectDetail(
        project, tuple(DistFile(f"{project}-{v}-py3-none-any.whl") for v in sorted(versions))
    )

    verdict = judge(page, state, "warn")

    for version in versions:
        expected = sorted(r.id for r in state.affecting(project, version))
        found = verdict.finding(f"{project}-{version}-py3-none-any.whl")
        assert sorted(found.ids if found else ()) == expected, version


def _pep440(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
