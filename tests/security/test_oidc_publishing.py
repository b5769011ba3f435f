"""Item 11 of the hardening: CI ID tokens (OIDC) publish what their mapping says, for a
short time, once per release, from a tag when the rules say so, and read nothing else.

A real `packyard serve` (SQLite and PostgreSQL) trusts a CI issuer served on
127.0.0.1 (`tests/unit/auth/jwks_server.py`); tokens are signed with its key, as a
CI system would, and changed the way an attacker who copied one would try.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.e2e.servers import PackyardProcess, clean_environment, init_store, packyard
from tests.postgres import PostgresServer
from tests.unit.auth.jwks_server import JwksServer, SigningKey
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e


@dataclass
class CiSite:
    server: PackyardProcess
    issuer: JwksServer
    key: SigningKey
    dists: Path

    def token(self, **claims: Any) -> str:
        """A GitLab-like ID token of `acme/tools` on the protected tag v1.0, unless changed."""
        defaults: dict[str, Any] = {
            "ref": "v1.0",
            "ref_type": "tag",
            "ref_protected": "true",
            "jti": str(uuid.uuid4()),
        }
        return self.key.sign(self.issuer.claims(**(defaults | claims)))

    def upload(self, path: Path, token: str) -> httpx.Response:
        """A twine-like upload of `path` with the token as the `__token__` password."""
        content_type, body = encode(
            twine_form(path), (path.name, path.read_bytes(), "application/octet-stream")
        )
        return httpx.post(
            self.server.url + "/legacy/",
            content=body,
            headers={"content-type": content_type.decode()},
            auth=("__token__", token),
            timeout=60,
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The `database_url` fixture's two databases, once for the module's one server each."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'packyard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[CiSite]:
    """`acme/tools` may publish acme-tools from protected tags; `secret-thing` exists too.
    Reading needs credentials. Each test publishes versions of its own."""
    root = tmp_path_factory.mktemp("ci")
    key = SigningKey.rsa("ci-key")
    dists = root / "dists"
    (dists / "existing").mkdir(parents=True)
    build_wheel(dists / "existing", "acme-tools", "0.1")
    build_wheel(dists / "existing", "secret-thing", "2.0")
    data = root / "data"
    env = clean_environment(PACKYARD_DATABASE_URL=database)
    init_store(data, env=env)
    imported = packyard("import", "--data-dir", str(data), str(dists / "existing"), env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    with JwksServer() as issuer:
        issuer.publish(key)
        config = root / "packyard.toml"
        config.write_text(
            "[auth]\nread_requires_auth = true\n\n"
            "[[auth.oidc]]\n"
            f'issuer = "{issuer.issuer}"\naudience = "packyard"\njwks_url = "{issuer.jwks_url}"\n'
            'required_claims = { ref_type = ["tag"], ref_protected = ["true"] }\n'
            '[auth.oidc.projects]\n"acme/tools" = ["acme-tools"]\n'
        )
        server = PackyardProcess(data, database_url=database)
        server.argv += ["--config", str(config)]
        with server:
            yield CiSite(server, issuer, key, dists)


def test_a_long_lived_token_is_refused(site: CiSite) -> None:
    wheel = build_wheel(site.dists, "acme-tools", "2.0")
    now = int(time.time())
    day_long = site.token(iat=now, nbf=now, exp=now + 86400)

    refused = site.upload(wheel, day_long)
    assert refused.status_code == 403
    assert "max_token_lifetime" in refused.text
    assert site.upload(wheel, site.token()).status_code == 200


def test_a_branch_cannot_pose_as_a_tag(site: CiSite) -> None:
    """GitLab's `ref` is the bare name: a branch called v1.0 has `ref` v1.0 too."""
    wheel = build_wheel(site.dists, "acme-tools", "2.1")

    branch = site.upload(wheel, site.token(ref_type="branch"))
    assert branch.status_code == 403
    assert "ref_type 'branch' may not publish" in branch.text
    unprotected = site.upload(wheel, site.token(ref_protected="false"))
    assert unprotected.status_code == 403
    assert "ref_protected" in unprotected.text


def test_a_token_publishes_one_release_and_its_replay_is_refused(site: CiSite) -> None:
    token = site.token()
    first = site.upload(build_wheel(site.dists, "acme-tools", "1.0"), token)
    assert first.status_code == 200, first.text
    # twine upload dist/*: the sdist of the same release, with the same token.
    second = site.upload(build_sdist(site.dists, "acme-tools", "1.0"), token)
    assert second.status_code == 200, second.text

    # The same jti again, for another release: a copied token is worth nothing.
    replay = site.upload(build_wheel(site.dists, "acme-tools", "6.6.6"), token)
    assert replay.status_code == 403
    assert "already uploaded to acme-tools 1.0" in replay.text
    no_jti = site.upload(build_wheel(site.dists, "acme-tools", "6.6.6"), site.token(jti=None))
    assert no_jti.status_code == 403
    assert "no 'jti' claim" in no_jti.text
    page = httpx.get(site.server.index_url + "acme-tools/", auth=("__token__", site.token()))
    assert page.status_code == 200
    assert "6.6.6" not in page.text
    fresh = site.upload(build_wheel(site.dists, "acme-tools", "1.1"), site.token())
    assert fresh.status_code == 200, fresh.text


def test_a_ci_token_reads_only_the_projects_it_publishes(site: CiSite) -> None:
    auth = ("__token__", site.token())
    with httpx.Client(base_url=site.server.url, auth=auth, timeout=30) as ci:
        mine = ci.get("/simple/acme-tools/")
        assert mine.status_code == 200
        assert ci.get("/files/acme-tools/acme_tools-0.1-py3-none-any.whl").status_code == 200
        for path in (
            "/simple/secret-thing/",
            "/files/secret-thing/secret_thing-2.0-py3-none-any.whl",
            "/simple/",
            "/project/secret-thing/",
            "/search?q=secret",
        ):
            refused = ci.get(path, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            assert refused.status_code == 403, (path, refused.text)
            assert "secret-thing" not in refused.text.replace(path, "")
