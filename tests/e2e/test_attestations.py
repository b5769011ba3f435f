"""PEP 740 end to end: real twine and uv publish attested files to a real `packyard
serve` with the CI ID token of the job that signed them, and packyard serves the
provenance back; pip installs the attested file.

The attestations are the real ones in tests/data/attestations: a GitLab job of
`facutuesca/gitlab-oidc-project` on gitlab.com and a GitHub workflow of
`trailofbits/pypi-attestations`. The CI tokens are minted by two test issuers on
127.0.0.1 (`tests/unit/auth/jwks_server.py`) with claims naming those
repositories; `sigstore_issuer` tells packyard how Sigstore's certificates name
each issuer. Verification is offline (the public-good root bundled with sigstore).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.attestations.publisher import GITHUB_ACTIONS_ISSUER
from tests.attestations_data import (
    GITHUB_REPOSITORY,
    GITHUB_SDIST,
    GITHUB_WORKFLOW_REF,
    GITLAB_CONFIG_REF,
    GITLAB_REPOSITORY,
    GITLAB_SDIST,
)
from tests.e2e.clients import run
from tests.e2e.servers import BIN, PYTHON, PackyardProcess, clean_environment, packyard
from tests.unit.auth.jwks_server import JwksServer, SigningKey

pytestmark = pytest.mark.e2e
INTEGRITY = "application/vnd.pypi.integrity.v1+json"
JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}


@dataclass
class Site:
    server: PackyardProcess
    gitlab: JwksServer
    github: JwksServer
    key: SigningKey
    root: Path
    admin_token: str

    def gitlab_token(self, **claims: Any) -> str:
        values = {
            "project_path": GITLAB_REPOSITORY,
            "ci_config_ref_uri": GITLAB_CONFIG_REF,
            "jti": str(uuid.uuid4()),
        }
        return self.key.sign(self.gitlab.claims(**(values | claims)))

    def github_token(self) -> str:
        claims = {
            "project_path": None,
            "repository": GITHUB_REPOSITORY,
            "job_workflow_ref": GITHUB_WORKFLOW_REF,
            "jti": str(uuid.uuid4()),
        }
        return self.key.sign(self.github.claims(**claims))

    def dist(self, source: Path, *attestations: str) -> Path:
        """A copy of `source` in a folder of its own, with its `.{kind}.attestation` files."""
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        shutil.copy(source, folder)
        for kind in attestations:
            name = f"{source.name}.{kind}.attestation"
            shutil.copy(source.parent / name, folder / name)
        return folder / source.name

    def twine(self, dist: Path, token: str, *options: str) -> tuple[int, str]:
        argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        argv += ["--repository-url", self.server.url + "/legacy/", "-u", "__token__"]
        # twine takes the attestations as inputs beside the file: all of its folder.
        inputs = sorted(str(path) for path in dist.parent.iterdir())
        result = run([*argv, "-p", token, *options, *inputs])
        # twine (rich) wraps lines and indents them: compare words, not lines.
        return result.returncode, " ".join((result.stdout + result.stderr).split())

    def cli(self, *args: str) -> str:
        env = clean_environment(**self.server.environment)
        result = packyard(*args, "--data-dir", str(self.server.data_dir), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("attestations")
    key = SigningKey.rsa("ci-key")
    with JwksServer() as gitlab, JwksServer() as github:
        gitlab.publish(key)
        github.publish(key)
        config = root / "packyard.toml"
        config.write_text(
            "[[auth.oidc]]\n"
            f'issuer = "{gitlab.issuer}"\naudience = "packyard"\n'
            'sigstore_issuer = "https://gitlab.com"\n'
            f'[auth.oidc.projects]\n"{GITLAB_REPOSITORY}" = ["gitlab-oidc-project"]\n\n'
            "[[auth.oidc]]\n"
            f'issuer = "{github.issuer}"\naudience = "packyard"\n'
            f'sigstore_issuer = "{GITHUB_ACTIONS_ISSUER}"\nproject_claim = "repository"\n'
            f'[auth.oidc.projects]\n"{GITHUB_REPOSITORY}" = ["pypi-attestations"]\n'
        )
        server = PackyardProcess(root / "data")
        server.argv += ["--config", str(config)]
        server.environment["PACKYARD_CONFIG"] = str(config)
        server.init()
        env = clean_environment(**server.environment)
        data = ["--data-dir", str(server.data_dir)]
        assert packyard("user", "add", "root", "--admin", *data, env=env).returncode == 0
        created = packyard("token", "create", "root", *data, env=env)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        with server:
            yield Site(server, gitlab, github, key, root, token)


def test_twine_publishes_an_attested_sdist_and_its_provenance_is_served(site: Site) -> None:
    dist = site.dist(GITLAB_SDIST, "publish")
    code, output = site.twine(dist, site.gitlab_token(), "--attestations")
    assert code == 0, output

    page = httpx.get(site.server.url + "/simple/gitlab-oidc-project/", headers=JSON_PAGE)
    [entry] = page.json()["files"]
    url = entry["provenance"]
    assert url == (f"{site.server.url}/integrity/gitlab-oidc-project/0.0.3/{dist.name}/provenance")
    html = httpx.get(site.server.url + "/simple/gitlab-oidc-project/").text
    assert f'data-provenance="{url}"' in html

    provenance = httpx.get(url)
    assert provenance.status_code == 200
    assert provenance.headers["content-type"] == INTEGRITY
    [bundle] = provenance.json()["attestation_bundles"]
    assert bundle["publisher"]["repository"] == GITLAB_REPOSITORY
    sent = json.loads(
        (GITLAB_SDIST.parent / f"{GITLAB_SDIST.name}.publish.attestation").read_text()
    )
    assert bundle["attestations"][0]["envelope"] == sent["envelope"]

    (event,) = [e for e in audit(site, "upload") if e["filename"] == dist.name]
    assert event["detail"]["attestations"] == ["https://docs.pypi.org/attestations/publish/v1"]


def test_pip_installs_the_attested_file(site: Site, tmp_path: Path) -> None:
    """flit_core, its build backend, comes from the test environment (no build isolation)."""
    dist = site.dist(GITLAB_SDIST, "publish")
    site.twine(dist, site.gitlab_token(), "--attestations")  # already there: a no-op 200
    target = tmp_path / "target"
    result = run(
        [
            PYTHON, "-m", "pip", "install", "--isolated", "--disable-pip-version-check",
            "--no-cache-dir", "--no-deps", "--no-build-isolation",
            "--index-url", site.server.url + "/simple/", "--target", str(target),
            "gitlab-oidc-project==0.0.3",
        ]
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(target.glob("gitlab_oidc_project-0.0.3.dist-info"))


def test_uv_publish_sends_the_attestation_beside_the_file(site: Site) -> None:
    """uv uploads `<file>.publish.attestation` with the file; packyard verifies it: the
    right one passes, another file's is refused with the reason on uv's screen."""
    good = site.dist(GITLAB_SDIST, "publish")
    assert uv_publish(site, good, site.gitlab_token()).returncode == 0

    wrong = site.dist(GITLAB_SDIST)
    other = GITHUB_SDIST.parent / f"{GITHUB_SDIST.name}.publish.attestation"
    shutil.copy(other, wrong.parent / f"{wrong.name}.publish.attestation")
    refused = uv_publish(site, wrong, site.gitlab_token())
    assert refused.returncode != 0
    assert "does not match the publisher" in refused.stdout + refused.stderr


def test_an_attestation_of_another_repository_is_refused_on_twines_screen(site: Site) -> None:
    """The token's repository maps to the project, but the attestation was signed
    elsewhere: refused, nothing stored, the reason in twine's output."""
    dist = site.dist(GITLAB_SDIST, "publish")
    renamed = dist.with_name("gitlab_oidc_project-0.0.3.tar.gz")
    token = site.gitlab_token(
        ci_config_ref_uri=GITLAB_CONFIG_REF.replace(".gitlab-ci.yml", "release.yml")
    )
    code, output = site.twine(renamed, token, "--attestations")
    assert code != 0
    assert "does not match the publisher" in output
    assert "CI file" in output


def test_a_required_attestation_refuses_an_unattested_ci_upload(site: Site) -> None:
    site.cli("attestations", "require", "gitlab-oidc-project", "ci")
    try:
        dist = site.dist(GITLAB_SDIST)  # no attestation beside it
        result = uv_publish(site, dist, site.gitlab_token())
        assert result.returncode != 0
        assert "requires a verified PEP 740 attestation" in result.stdout + result.stderr
        refused = [e for e in audit(site, "upload") if e["outcome"] == "refused"]
        assert any("requires a verified PEP 740" in e["detail"]["reason"] for e in refused)
        assert "gitlab-oidc-project\tci\tproject" in site.cli("attestations", "list")
    finally:
        site.cli("attestations", "require", "gitlab-oidc-project", "default")


def test_a_provenance_that_does_not_exist_is_a_404_with_a_message(site: Site) -> None:
    base = site.server.url + "/integrity/gitlab-oidc-project"
    for path, message in [
        ("/0.0.3/nothing-0.0.3.tar.gz/provenance", "is not a file of project"),
        ("/9.9/gitlab_oidc_project-0.0.3.tar.gz/provenance", "is not a file of version"),
        ("/0.0.3/gitlab_oidc_project-0.0.3.tar.gz", "Provenance URLs have the form"),
    ]:
        answer = httpx.get(base + path)
        assert answer.status_code == 404, path
        assert message in answer.text


def uv_publish(site: Site, dist: Path, token: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "uv"), "publish", "--no-config", "--publish-url"]
    argv += [site.server.url + "/legacy/", "--username", "__token__", "--password", token]
    # uv collects the attestations beside the files its glob matches (not beside
    # a file named alone): the folder's glob, as `uv publish` on `dist/*` does.
    return run([*argv, str(dist.parent / "*")])


def audit(site: Site, action: str) -> list[dict[str, Any]]:
    """The audit events of `action`, from the admin API."""
    answer = httpx.get(
        site.server.url + "/api/v1/audit",
        params={"action": action},
        auth=("__token__", site.admin_token),
    )
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events
