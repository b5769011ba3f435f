"""A private index: `read_requires_auth = true`, users and tokens made with the CLI,
and pip, uv and an HTTP client reading with credentials (and pip refused without)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed
from tests.e2e.servers import BIN, PYTHON, PackyardProcess, clean_environment, init_store, packyard

pytestmark = pytest.mark.e2e
PASSWORD = "alice-password"


class PrivateSite:
    """The running server, alice's token and where things were built."""

    def __init__(self, server: PackyardProcess, token: str, root: Path) -> None:
        self.server = server
        self.token = token
        self.root = root

    def index_url(self, user: str, secret: str) -> str:
        return f"http://{user}:{secret}@127.0.0.1:{self.server.port}/simple/"


def _cli(data: Path, *args: str, input: str | None = None) -> str:
    result = packyard(*args, "--data-dir", str(data), input=input)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSite]:
    root = tmp_path_factory.mktemp("private")
    data = root / "data"
    config = root / "packyard.toml"
    config.write_text("[auth]\nread_requires_auth = true\n")
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-core", "1.0")
    init_store(data)
    _cli(data, "import", "--upstream", "none", str(dists))
    _cli(data, "user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    token = _cli(data, "token", "create", "alice").strip().splitlines()[-1]
    server = PackyardProcess(data)
    server.argv += ["--config", str(config)]
    with server:
        yield PrivateSite(server, token, root)


def _pip(index_url: str, target: Path) -> subprocess.CompletedProcess[str]:
    """pip, verbose: it reports a page's 401 only in its verbose log."""
    argv = [PYTHON, "-m", "pip", "install", "--isolated", "--no-input", "-vv"]
    argv += ["--disable-pip-version-check", "--no-cache-dir", "--index-url", index_url]
    argv += ["--target", str(target), "acme-core"]
    return subprocess.run(
        argv, capture_output=True, text=True, env=clean_environment(), timeout=180, check=False
    )


def test_pip_installs_with_a_token_in_the_index_url(site: PrivateSite, tmp_path: Path) -> None:
    result = _pip(site.index_url("__token__", site.token), tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "t") == {"acme-core": "1.0"}


def test_pip_without_credentials_is_refused_with_401(site: PrivateSite, tmp_path: Path) -> None:
    result = _pip(site.server.index_url, tmp_path / "t")
    assert result.returncode != 0
    assert "401" in result.stdout + result.stderr
    assert not (tmp_path / "t").exists() or installed(tmp_path / "t") == {}
    answer = httpx.get(site.server.index_url + "acme-core/")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="packyard"'


def test_uv_installs_with_a_password_in_uv_index_url(site: PrivateSite, tmp_path: Path) -> None:
    argv = [str(BIN / "uv"), "pip", "install", "--no-cache", "--no-config", "--python", PYTHON]
    argv += ["--target", str(tmp_path / "t"), "acme-core"]
    env = clean_environment(UV_INDEX_URL=site.index_url("alice", PASSWORD))
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "t") == {"acme-core": "1.0"}


def test_the_api_answers_a_token(site: PrivateSite) -> None:
    pair = base64.b64encode(f"__token__:{site.token}".encode()).decode()
    answer = httpx.get(
        site.server.url + "/api/v1/tokens", headers={"Authorization": f"Basic {pair}"}
    )
    assert answer.status_code == 200
    assert [token["user"] for token in answer.json()] == ["alice"]
    assert site.token.startswith(answer.json()[0]["prefix"])
    assert httpx.get(site.server.url + "/api/v1/tokens").status_code == 401
    assert httpx.get(site.server.url + "/healthz").status_code == 200
