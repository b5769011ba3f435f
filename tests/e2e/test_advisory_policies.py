"""Known vulnerabilities enforced by policy, with real pip and uv against a real server.

The upstream (`json_upstream.py`) offers mkdocs 1.2.1 and 1.2.2, wheels built
here under the real name; the site under test proxies it as `json-upstream`
and holds the in-house channels 2.4.0 and 3.0.2. Two real records of the PyPA
snapshot are imported with `packyard advisories import`: PYSEC-2021-878
(mkdocs 1.2.2, fixed in 1.2.3) and PYSEC-2021-113 (channels 3.0.0 up to
3.0.3). The configuration says `yank` for the upstream and `hide` for in-house
packages; each test sets the runtime policy it needs with the CLI, as an
operator would, and the running server applies it on its next request.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.advisory_data import SNAPSHOT
from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import PYTHON, ServerProcess, free_port, packyard

pytestmark = pytest.mark.e2e

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
MKDOCS = "PYSEC-2021-878"
CHANNELS = "PYSEC-2021-113"
AFFECTED = "mkdocs-1.2.2-py3-none-any.whl"
UPSTREAM = "json-upstream"


@dataclass(frozen=True)
class Site:
    server: ServerProcess
    config: Path
    data_dir: Path
    events: Path

    @property
    def index_url(self) -> str:
        return self.server.url + "/simple/"

    def file_url(self, project: str, filename: str) -> str:
        return f"{self.server.url}/files/{project}/{filename}"

    def advisories(self, *args: str) -> str:
        """`packyard advisories ARGS` on the site's state; its stdout (it must succeed)."""
        state = ["--config", str(self.config), "--data-dir", str(self.data_dir)]
        result = packyard("advisories", *args, *state)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def policy(self, source: str, policy: str | None) -> None:
        """Set `source`'s runtime policy, or clear it (None: the configured one)."""
        self.advisories("policy", source, *([policy] if policy else ["--clear"]))

    def page(self, project: str) -> dict[str, object]:
        response = httpx.get(self.index_url + project + "/", headers=JSON)
        assert response.status_code == 200, response.text
        page: dict[str, object] = response.json()
        return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("advisory-policies")
    dists = root / "dists"
    dists.mkdir()
    uploaded = datetime(2021, 9, 1, tzinfo=UTC)
    write_manifest(
        root / "upstream",
        [(build_wheel(dists, "mkdocs", version), uploaded) for version in ("1.2.1", "1.2.2")],
    )
    in_house = root / "in-house"
    in_house.mkdir()
    build_wheel(in_house, "channels", "2.4.0")
    build_wheel(in_house, "channels", "3.0.2")
    records = root / "records"
    records.mkdir()
    shutil.copy(SNAPSHOT / "mkdocs" / f"{MKDOCS}.yaml", records)
    shutil.copy(SNAPSHOT / "channels" / f"{CHANNELS}.yaml", records)
    events = root / "events" / "events.jsonl"
    data_dir = root / "site-data"
    with JsonUpstreamProcess(root / "upstream") as upstream:
        config = root / "packyard.toml"
        config.write_text(
            f"""
[[upstreams]]
url = "{upstream.index_url}"
name = "{UPSTREAM}"
advisories_policy = "yank"

[advisories]
policy = "warn"
local_policy = "hide"

[telemetry]
events_file = "{events}"
"""
        )
        port = free_port()
        argv = [PYTHON, "-m", "packyard", "serve", "--config", str(config)]
        argv += ["--data-dir", str(data_dir), "--port", str(port)]
        with ServerProcess(argv, port, root / "site.log", "/healthz") as server:
            site = Site(server, config, data_dir, events)
            # Into the running server's state, as an operator would.
            imported = packyard(
                "import", "--data-dir", str(data_dir), "--upstream", "none", str(in_house)
            )
            assert imported.returncode == 0, imported.stdout + imported.stderr
            assert "added: 2" in site.advisories("import", str(records))
            yield site


def test_yank_pip_resolves_around_the_affected_version_and_a_pin_still_installs_it(
    site: Site, tmp_path: Path
) -> None:
    site.policy(UPSTREAM, None)  # the configuration's: yank

    latest = pip_install(site.index_url, tmp_path / "latest", "mkdocs")
    pinned = pip_install(site.index_url, tmp_path / "pinned", "mkdocs==1.2.2")

    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert installed(tmp_path / "latest") == {"mkdocs": "1.2.1"}
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert installed(tmp_path / "pinned") == {"mkdocs": "1.2.2"}
    assert "yanked" in pinned.stderr
    assert f"known vulnerability {MKDOCS}" in pinned.stderr
    files = {f["filename"]: f["yanked"] for f in site.page("mkdocs")["files"]}  # type: ignore[attr-defined]
    assert files[AFFECTED] == f"known vulnerability {MKDOCS}"
    assert site.page("mkdocs")["_advisories"] == [
        {"version": "1.2.2", "action": "yank", "ids": [MKDOCS]}
    ]


def test_yank_uv_resolves_around_the_affected_version_and_a_pin_still_installs_it(
    site: Site, tmp_path: Path
) -> None:
    site.policy(UPSTREAM, "yank")

    latest = uv_install(site.index_url, tmp_path / "latest", "mkdocs")
    pinned = uv_install(site.index_url, tmp_path / "pinned", "mkdocs==1.2.2")

    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert installed(tmp_path / "latest") == {"mkdocs": "1.2.1"}
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert installed(tmp_path / "pinned") == {"mkdocs": "1.2.2"}
    assert MKDOCS in pinned.stderr  # uv's "is yanked (reason: ...)" warning


def test_hide_leaves_the_affected_version_out_of_what_pip_is_offered(
    site: Site, tmp_path: Path
) -> None:
    site.policy(UPSTREAM, "hide")

    pinned = pip_install(site.index_url, tmp_path / "pinned", "mkdocs==1.2.2")

    assert pinned.returncode != 0
    assert "(from versions: 1.2.1)" in pinned.stderr
    assert "No matching distribution found for mkdocs==1.2.2" in pinned.stderr
    page = site.page("mkdocs")
    assert page["versions"] == ["1.2.1"]
    assert page["_hidden-files"] == [
        {"filename": AFFECTED, "reason": f"known vulnerability {MKDOCS}"}
    ]
    # Hidden, not refused: a lock file that names the URL still gets it.
    assert httpx.get(site.file_url("mkdocs", AFFECTED)).status_code == 200


def test_deny_refuses_the_download_and_pip_and_uv_print_the_advisory(
    site: Site, tmp_path: Path
) -> None:
    site.policy(UPSTREAM, "deny")

    pinned = pip_install(site.index_url, tmp_path / "pinned", "mkdocs==1.2.2")
    by_url = pip_install(site.index_url, tmp_path / "by-url", site.file_url("mkdocs", AFFECTED))
    uv_by_url = uv_install(
        site.index_url, tmp_path / "uv", f"mkdocs @ {site.file_url('mkdocs', AFFECTED)}"
    )

    assert pinned.returncode != 0
    assert "No matching distribution found for mkdocs==1.2.2" in pinned.stderr
    # A URL from a lock file: pip and uv print the 403's status line, which names the advisory.
    # Both wrap long lines to the terminal's width: compare with the line breaks undone.
    assert by_url.returncode != 0
    assert "403 Client Error" in one_line(by_url.stderr)
    assert f"is refused: known vulnerability {MKDOCS}" in one_line(by_url.stderr)
    assert uv_by_url.returncode != 0
    assert f"403 {AFFECTED} of project 'mkdocs' is refused: known vulnerability {MKDOCS}" in (
        one_line(uv_by_url.stderr)
    )
    metadata = httpx.get(site.file_url("mkdocs", AFFECTED + ".metadata"))
    assert metadata.status_code == 403
    assert MKDOCS in metadata.text
    assert installed(tmp_path / "by-url") == {}


def one_line(output: str) -> str:
    return " ".join(output.split())


def test_an_accepted_risk_installs_again_until_it_is_revoked(site: Site, tmp_path: Path) -> None:
    site.policy(UPSTREAM, "deny")
    accepted = site.advisories("accept", MKDOCS, "--project", "mkdocs", "--reason", "docs only")
    assert accepted.strip() == f"{MKDOCS} for mkdocs: accepted"
    assert f"{MKDOCS}\tmkdocs\t" in site.advisories("exceptions")

    allowed = pip_install(site.index_url, tmp_path / "allowed", "mkdocs==1.2.2")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert installed(tmp_path / "allowed") == {"mkdocs": "1.2.2"}

    site.advisories("revoke", MKDOCS, "--project", "mkdocs")
    assert httpx.get(site.file_url("mkdocs", AFFECTED)).status_code == 403


def test_the_local_policy_hides_the_affected_in_house_release(site: Site, tmp_path: Path) -> None:
    result = pip_install(site.index_url, tmp_path, "channels")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"channels": "2.4.0"}
    assert site.page("channels")["_hidden-files"] == [
        {"filename": "channels-3.0.2-py3-none-any.whl", "reason": f"known vulnerability {CHANNELS}"}
    ]


def test_the_cli_lists_each_source_policy_marked_config_or_database(site: Site) -> None:
    site.policy(UPSTREAM, "deny")
    site.policy("local", None)
    lines = site.advisories("policy").splitlines()
    assert lines[0] == "local\thide\tconfig"
    assert lines[1].startswith(f"{UPSTREAM}\tdeny\tdatabase (set by cli:")
    assert lines[1].endswith("; config: yank)")
    unknown = packyard(
        "advisories",
        "policy",
        "npm",
        "deny",
        "--config",
        str(site.config),
        "--data-dir",
        str(site.data_dir),
    )
    assert unknown.returncode == 1
    assert "Unknown source 'npm'" in unknown.stderr


def test_affected_downloads_are_counted_and_their_events_carry_the_ids(site: Site) -> None:
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    site.policy(UPSTREAM, "warn")
    assert httpx.get(site.file_url("mkdocs", AFFECTED)).status_code == 200
    site.policy(UPSTREAM, "deny")
    assert httpx.get(site.file_url("mkdocs", AFFECTED)).status_code == 403

    metrics = httpx.get(site.server.url + "/metrics").text
    assert f'packyard_advisory_downloads_total{{policy="warn",source="{UPSTREAM}"}}' in metrics
    assert f'packyard_advisory_downloads_total{{policy="deny",source="{UPSTREAM}"}}' in metrics
    deadline = time.monotonic() + 10  # events are written in batches, by a thread
    while True:
        lines = [json.loads(line) for line in site.events.read_text().splitlines()]
        ours = [e for e in lines if e["at"] >= since and e.get("filename") == AFFECTED]
        downloads = [e for e in ours if e["event"] == "download"]
        refusals = [e for e in ours if e["event"] == "download-refused"]
        if (downloads and refusals) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(e["advisories"], e["advisory_action"]) for e in downloads] == [([MKDOCS], "warn")]
    assert [(e["advisories"], e["source"]) for e in refusals] == [([MKDOCS], UPSTREAM)]
