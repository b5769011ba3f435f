"""Curation changed at runtime from the CLI, against a running server: a real
upstream packyard with `public-lib`, and the site under test, which proxies it
under the name `upstream` from a configuration file (the CLI reads the same
file to know the upstreams). The running server must apply each change on its
very next request: the rules are in the database and the serial is bumped in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install
from tests.e2e.servers import PYTHON, PackyardProcess, ServerProcess, free_port, packyard

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Site:
    server: ServerProcess
    config: Path
    data_dir: Path

    @property
    def index_url(self) -> str:
        return self.server.url + "/simple/"

    def policy(self, *args: str) -> str:
        """`packyard policy ARGS` on the site's state; its stdout, after checking it succeeded."""
        state = ["--config", str(self.config), "--data-dir", str(self.data_dir)]
        result = packyard("policy", *args, *state)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("policy-admin")
    dists = root / "upstream-dists"
    dists.mkdir()
    build_wheel(dists, "public-lib", "1.0")
    build_wheel(dists, "other-lib", "1.0")
    upstream = PackyardProcess(root / "upstream-data")
    result = upstream.import_dir(dists)
    assert result.returncode == 0, result.stdout + result.stderr
    config = root / "packyard.toml"
    config.write_text(f'[[upstreams]]\nurl = "{upstream.index_url}"\nname = "upstream"\n')
    data_dir = root / "site-data"
    port = free_port()
    argv = [PYTHON, "-m", "packyard", "serve", "--config", str(config)]
    argv += ["--data-dir", str(data_dir), "--port", str(port)]
    with upstream, ServerProcess(argv, port, root / "site.log", "/healthz") as server:
        yield Site(server, config, data_dir)


def test_a_deny_from_the_cli_blocks_pip_at_once_and_its_removal_lets_it_back(
    site: Site, tmp_path: Path
) -> None:
    before = pip_install(site.index_url, tmp_path / "before", "public-lib")
    assert before.returncode == 0, before.stdout + before.stderr  # warm: the page is cached

    assert "added" in site.policy("deny", "upstream", "public-*")

    denied = pip_install(site.index_url, tmp_path / "denied", "public-lib")
    assert denied.returncode != 0
    assert "No matching distribution" in denied.stderr
    assert httpx.get(site.index_url + "public-lib/").status_code == 404
    others = pip_install(site.index_url, tmp_path / "others", "other-lib")
    assert others.returncode == 0, others.stdout + others.stderr
    assert "deny\tpublic-*\tdatabase" in site.policy("list")

    site.policy("remove", "upstream", "deny", "public-*")

    after = pip_install(site.index_url, tmp_path / "after", "public-lib")
    assert after.returncode == 0, after.stdout + after.stderr
    assert installed(tmp_path / "after") == {"public-lib": "1.0"}


def test_an_unknown_upstream_is_refused_with_the_configured_names(site: Site) -> None:
    state = ["--config", str(site.config), "--data-dir", str(site.data_dir)]
    result = packyard("policy", "deny", "pypi", "x-*", *state)
    assert result.returncode == 1
    assert "the configured upstreams are 'upstream'" in result.stderr


def test_an_exempt_project_installs_through_the_cooldown_and_is_held_back_again(
    site: Site, tmp_path: Path
) -> None:
    site.policy("cooldown", "upstream", "3")  # the upstream's files are minutes old
    try:
        held = pip_install(site.index_url, tmp_path / "held", "public-lib")
        assert held.returncode != 0
        page = httpx.get(site.index_url + "public-lib/")
        assert "cool-down of 3 days" in page.text

        said = site.policy("exempt", "upstream", "Public_Lib", "--reason", "fix for CVE-2026-1")
        assert "public-lib of upstream from the cool-down: exempted" in said
        exempt = pip_install(site.index_url, tmp_path / "exempt", "public-lib")
        assert exempt.returncode == 0, exempt.stdout + exempt.stderr
        assert installed(tmp_path / "exempt") == {"public-lib": "1.0"}
        other = pip_install(site.index_url, tmp_path / "other", "other-lib")
        assert other.returncode != 0
        assert "  exempt\tpublic-lib\tcli:" in site.policy("list")

        site.policy("unexempt", "upstream", "public-lib")
        again = pip_install(site.index_url, tmp_path / "again", "public-lib")
        assert again.returncode != 0
    finally:
        site.policy("cooldown", "upstream", "default")


def test_an_exemption_needs_a_reason(site: Site) -> None:
    state = ["--config", str(site.config), "--data-dir", str(site.data_dir)]
    result = packyard("policy", "exempt", "upstream", "public-lib", "--reason", " ", *state)
    assert result.returncode == 1
    assert "a reason is required" in result.stderr
