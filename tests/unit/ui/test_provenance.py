"""Each file's PEP 740 provenance on the project page: the verified publisher, the
commit and ref its certificate names, and a link to the document, escaped."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from packyard.app import create_app
from packyard.attestations.publisher import GITHUB_ACTIONS_ISSUER, publisher_of
from packyard.attestations.stored import stored_provenance
from packyard.attestations.verify import AttestationVerifier, Verified
from packyard.auth.identity import Identity
from packyard.browser.build import build_browser
from packyard.browser.provenance import Publisher, parse_summary
from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.routes.integrity import IntegrityRoute
from packyard.settings import AttestationSettings, Settings
from tests.attestations_data import (
    GITHUB_REPOSITORY,
    GITHUB_SDIST,
    GITHUB_WORKFLOW_REF,
    GITLAB_CONFIG_REF,
    GITLAB_REPOSITORY,
    GITLAB_SDIST,
    attestation,
    field,
)
from tests.unit.ui.conftest import Site

pytestmark = pytest.mark.anyio

CORE_WHEEL = "acme_core-1.0-py3-none-any.whl"
CORE_LINK = f"/integrity/acme-core/1.0/{CORE_WHEEL}/provenance"
GITLAB_COMMIT = "72f7c63b75eb55ea80864962f0e645c93414da34"
GITHUB_COMMIT = "08802efe1f8e5fec4ad842d6b8ce97656092ee72"
REQUIRED = "No verified provenance; this project requires it"


def verify(dist: Path, claims: dict[str, object]) -> Verified:
    """The real vector `dist`'s attestation, verified for the CI job of `claims`."""
    job = Identity(kind="ci", name="ci", claims=claims)
    digest = hashlib.sha256(dist.read_bytes()).hexdigest()
    return AttestationVerifier().verify(
        field(attestation(dist)), dist.name, digest, publisher_of(job, ())
    )


@pytest.fixture(scope="module")
def gitlab() -> Verified:
    claims: dict[str, object] = {
        "iss": "https://gitlab.com",
        "project_path": GITLAB_REPOSITORY,
        "ci_config_ref_uri": GITLAB_CONFIG_REF,
    }
    return verify(GITLAB_SDIST, claims)


@pytest.fixture(scope="module")
def github() -> Verified:
    claims: dict[str, object] = {
        "iss": GITHUB_ACTIONS_ISSUER,
        "repository": GITHUB_REPOSITORY,
        "job_workflow_ref": GITHUB_WORKFLOW_REF,
    }
    return verify(GITHUB_SDIST, claims)


def attest(site: Site, filename: str, summary: str, provenance: str = '{"version":1}') -> None:
    """Give the stored `filename` a provenance and its summary, as an upload would."""
    with site.store.sessions.begin() as session:
        session.execute(
            update(File)
            .where(File.filename == filename)
            .values(provenance=provenance, provenance_publisher=summary)
        )
        bump_serial(session)


def require(site: Site, project: str, requirement: str | None) -> None:
    with site.store.sessions.begin() as session:
        session.execute(
            update(Project)
            .where(Project.name == project)
            .values(attestation_requirement=requirement)
        )
        bump_serial(session)


def files_section(html: str) -> str:
    return html[html.index('id="files"') :]


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


async def test_gitlab_provenance_shows_publisher_commit_ref_and_link(
    site: Site, gitlab: Verified
) -> None:
    attest(site, CORE_WHEEL, gitlab.summary, gitlab.provenance)

    response = await site.client.get("/project/acme-core/")

    assert response.status_code == 200
    files = files_section(response.text)
    assert "badge--verified" in files
    assert "<dt>Publisher</dt><dd>GitLab</dd>" in files
    repository = f'<a href="https://gitlab.com/{GITLAB_REPOSITORY}" rel="nofollow noopener">'
    assert f"{repository}{GITLAB_REPOSITORY}</a>" in files
    assert "<dt>CI file</dt><dd><code>.gitlab-ci.yml</code></dd>" in files
    assert GITLAB_COMMIT in files
    assert f'href="https://gitlab.com/{GITLAB_REPOSITORY}/-/commit/{GITLAB_COMMIT}"' in files
    assert "<dt>Ref</dt><dd><code>refs/heads/main</code></dd>" in files
    assert f'href="https://gitlab.com/{GITLAB_REPOSITORY}/-/jobs/8415754949"' in files
    assert f'href="{CORE_LINK}"' in files
    assert REQUIRED not in files


async def test_github_provenance_names_the_workflow(site: Site, github: Verified) -> None:
    attest(site, CORE_WHEEL, github.summary, github.provenance)

    files = files_section((await site.client.get("/project/acme-core/")).text)

    assert "<dt>Publisher</dt><dd>GitHub</dd>" in files
    assert f'href="https://github.com/{GITHUB_REPOSITORY}"' in files
    assert "<dt>Workflow</dt><dd><code>release.yml</code></dd>" in files
    assert f'href="https://github.com/{GITHUB_REPOSITORY}/commit/{GITHUB_COMMIT}"' in files
    assert "<code>refs/tags/v0.0.19</code>" in files


async def test_the_link_serves_the_provenance_document(site: Site, gitlab: Verified) -> None:
    attest(site, CORE_WHEEL, gitlab.summary, gitlab.provenance)
    integrity = IntegrityRoute(site.recorder, stored_provenance(site.store.sessions))
    app = create_app(site.recorder, browser=site.browser, integrity=integrity)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        files = files_section((await client.get("/project/acme-core/")).text)
        [link] = [href for href in hrefs(files) if href.startswith("/integrity/")]
        document = await client.get(link)

    assert document.status_code == 200
    assert document.json() == json.loads(gitlab.provenance)


async def test_a_file_without_provenance_shows_none(site: Site) -> None:
    files = files_section((await site.client.get("/project/acme-tools/")).text)

    assert "Provenance" not in files
    assert "/integrity/" not in files


@pytest.mark.parametrize(
    "summary",
    ["{not json", "[]", "null", '{"publisher": "GitLab"}', '{"publisher": {"kind": 1}}', "[[[["],
)
async def test_a_malformed_summary_shows_a_provenance_without_details(
    site: Site, summary: str
) -> None:
    attest(site, CORE_WHEEL, summary)

    response = await site.client.get("/project/acme-core/")

    assert response.status_code == 200
    files = files_section(response.text)
    assert "<dt>Provenance</dt>" in files
    assert "present" in files
    assert f'href="{CORE_LINK}"' in files
    assert "badge--verified" not in files
    assert "<dt>Publisher</dt>" not in files


async def test_hostile_summary_values_are_escaped_and_unsafe_links_dropped(site: Site) -> None:
    script = "<script>window.xss=1</script>"
    summary = {
        "publisher": {
            "kind": script,
            "repository": '<img src=x onerror="window.xss=2">',
            "workflow": script,
            "environment": script,
        },
        "repository_url": "javascript:alert(1)",
        "commit": script,
        "ref": script,
        "run": "http://evil.example/run",
    }
    attest(site, CORE_WHEEL, json.dumps(summary))

    html = (await site.client.get("/project/acme-core/")).text
    files = files_section(html)

    assert "<script" not in html.replace('<script src="/static/', "")
    assert "<img" not in html
    assert "&lt;script&gt;window.xss=1&lt;/script&gt;" in files
    assert "&lt;img src=x onerror=&#34;window.xss=2&#34;&gt;" in files
    links = hrefs(files)
    assert not [href for href in links if "javascript:" in href.lower() or "evil" in href]
    assert f'href="{CORE_LINK}"' in files  # the document's own link stays


async def test_a_project_that_requires_provenance_marks_files_without_it(
    site: Site, gitlab: Verified
) -> None:
    require(site, "acme-core", "ci")
    files = files_section((await site.client.get("/project/acme-core/")).text)
    assert REQUIRED in files

    attest(site, CORE_WHEEL, gitlab.summary, gitlab.provenance)
    files = files_section((await site.client.get("/project/acme-core/")).text)
    assert REQUIRED not in files
    assert "badge--verified" in files

    require(site, "acme-tools", "none")
    assert REQUIRED not in (await site.client.get("/project/acme-tools/")).text


@pytest.fixture
async def requiring_client(site: Site, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A browser built from settings whose `[attestations] require` is "ci"."""
    settings = Settings(data_dir=tmp_path, attestations=AttestationSettings(require="ci"))
    browser = build_browser(settings, site.store.engine, site.recorder, site.index)
    transport = httpx.ASGITransport(app=create_app(site.recorder, browser=browser))
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        yield client


async def test_the_configured_requirement_applies_unless_the_project_has_its_own(
    site: Site, requiring_client: httpx.AsyncClient
) -> None:
    assert REQUIRED in (await requiring_client.get("/project/acme-tools/")).text

    require(site, "acme-tools", "none")
    assert REQUIRED not in (await requiring_client.get("/project/acme-tools/")).text


async def test_an_upstream_provenance_is_linked_but_not_called_verified(site: Site) -> None:
    files = files_section((await site.client.get("/project/httpx/")).text)

    assert "published by pypi, not verified by this server" in files
    assert 'href="/integrity/httpx/0.28.1/httpx-0.28.1-py3-none-any.whl/provenance"' in files
    assert "badge--verified" not in files


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://gitlab.com/group/project", True),
        ("https://git.example:8443/a", True),
        ("javascript:alert(1)", False),
        ("JAVASCRIPT:alert(1)", False),
        ("http://gitlab.com/group/project", False),
        ("https://", False),
        ("https:///path", False),
        ("https://?x", False),
        (" https://gitlab.com/a", False),
        ("https://gitlab.com/a b", False),
        ("https://gitlab.com/a\nb", False),
        ("//gitlab.com/a", False),
    ],
)
def test_only_https_urls_become_links(url: str, kept: bool) -> None:
    named = {"kind": "GitLab", "repository": "a"}
    summary = {"publisher": named, "repository_url": url, "run": url}

    publisher = parse_summary(json.dumps(summary))

    assert publisher is not None
    assert publisher.repository_url == (url if kept else None)
    assert publisher.run_url == (url if kept else None)


@pytest.mark.parametrize(
    ("kind", "commit", "expected"),
    [
        ("GitLab", "a" * 40, "https://forge.example/r/-/commit/" + "a" * 40),
        ("GitHub", "b" * 40, "https://forge.example/r/commit/" + "b" * 40),
        ("GitHub", "../../evil", None),
        ("Other", "a" * 40, None),
    ],
)
def test_commit_links_only_for_known_forges_and_hex_commits(
    kind: str, commit: str, expected: str | None
) -> None:
    publisher = Publisher(kind, "r", "https://forge.example/r", None, None, commit, None, None)

    assert publisher.commit_url == expected
