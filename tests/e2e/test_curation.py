"""Curation, snapshots and telemetry, with pip and uv against real processes.

The upstream is `tests/e2e/json_upstream.py`, whose files carry chosen upload
times; the site under test reads a configuration file that denies `evil-*`
and holds new files back for 7 days, and writes its events to a file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install, uv_install
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
SNAPSHOT_DATE = "2024-03-01"


@dataclass(frozen=True)
class CuratedSite:
    site: ServerProcess
    events: Path

    @property
    def index_url(self) -> str:
        return self.site.url + "/simple/"


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CuratedSite]:
    root = tmp_path_factory.mktemp("curation")
    dists = root / "dists"
    dists.mkdir()
    now = datetime.now(UTC)
    write_manifest(
        root / "upstream",
        [
            (build_wheel(dists, "evil-pkg", "1.0"), datetime(2024, 1, 5, tzinfo=UTC)),
            (build_wheel(dists, "fresh-lib", "1.0"), datetime(2024, 1, 10, tzinfo=UTC)),
            (build_wheel(dists, "fresh-lib", "2.0"), now - timedelta(days=1)),
            (build_wheel(dists, "young-lib", "1.0"), now - timedelta(days=2)),
            (build_wheel(dists, "dated-lib", "1.0"), datetime(2024, 1, 10, tzinfo=UTC)),
            (build_wheel(dists, "dated-lib", "2.0"), datetime(2024, 6, 1, tzinfo=UTC)),
        ],
    )
    events = root / "events" / "events.jsonl"
    with JsonUpstreamProcess(root / "upstream") as upstream:
        config = root / "packyard.toml"
        config.write_text(
            f"""
[[upstreams]]
url = "{upstream.index_url}"
name = "json-upstream"
deny = ["evil-*"]
cooldown_days = 7

[telemetry]
events_file = "{events}"
"""
        )
        port = free_port()
        argv = [PYTHON, "-m", "packyard", "serve", "--config", str(config)]
        argv += ["--data-dir", str(root / "site-data"), "--port", str(port)]
        with ServerProcess(argv, port, root / "site.log", "/healthz") as site:
            yield CuratedSite(site, events)


def test_pip_cannot_install_a_denied_name(curated: CuratedSite, tmp_path: Path) -> None:
    result = pip_install(curated.index_url, tmp_path, "evil-pkg")
    assert result.returncode != 0
    assert "No matching distribution" in result.stderr
    assert httpx.get(curated.index_url + "evil-pkg/").status_code == 404


def test_a_denied_name_is_a_404_that_says_which_rule(curated: CuratedSite) -> None:
    response = httpx.get(curated.index_url + "evil-pkg/")

    assert response.status_code == 404
    assert response.text == (
        "Project 'evil-pkg' is not offered: the name matches the deny-list entry 'evil-*' "
        "of upstream json-upstream.\n"
    )


def test_when_a_cool_down_hides_every_file_the_page_says_why(
    curated: CuratedSite, tmp_path: Path
) -> None:
    """pip can only say "No matching distribution"; the page it read, opened in a
    browser or printed by curl, names each hidden file with its reason, and the
    file's own URL answers 404 with it."""
    wheel = "young_lib-1.0-py3-none-any.whl"

    result = pip_install(curated.index_url, tmp_path, "young-lib")
    page = httpx.get(curated.index_url + "young-lib/", headers={"Accept": "text/html"})
    download = httpx.get(f"{curated.site.url}/files/young-lib/{wheel}")

    assert result.returncode != 0
    assert "No matching distribution" in result.stderr
    assert page.status_code == 200  # the project is known: uv stops here, never elsewhere
    assert "<p>1 file(s) hidden by this index:</p>" in page.text
    assert f"<p>{wheel}: cool-down of 7 days: uploaded " in page.text
    assert "<a " not in page.text
    assert download.status_code == 404
    assert download.text.startswith(f"File '{wheel}' of project 'young-lib' is hidden: cool-down")


def test_a_version_in_cool_down_is_not_installed(curated: CuratedSite, tmp_path: Path) -> None:
    result = pip_install(curated.index_url, tmp_path, "fresh-lib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"fresh-lib": "1.0"}
    page = httpx.get(curated.index_url + "fresh-lib/", headers=JSON).json()
    assert page["versions"] == ["1.0"]
    (hidden,) = page["_hidden-files"]
    assert hidden["filename"] == "fresh_lib-2.0-py3-none-any.whl"
    assert "cool-down of 7 days" in hidden["reason"]
    held_back = httpx.get(curated.site.url + "/files/fresh-lib/fresh_lib-2.0-py3-none-any.whl")
    assert held_back.status_code == 404
    assert "cool-down" in held_back.text


def test_pip_installs_what_a_snapshot_date_offered(curated: CuratedSite, tmp_path: Path) -> None:
    snapshot = f"{curated.site.url}/snapshot/{SNAPSHOT_DATE}/simple/"
    result = pip_install(snapshot, tmp_path / "then", "dated-lib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "then") == {"dated-lib": "1.0"}
    result = pip_install(curated.index_url, tmp_path / "now", "dated-lib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "now") == {"dated-lib": "2.0"}


def test_uv_installs_what_a_snapshot_date_offered(curated: CuratedSite, tmp_path: Path) -> None:
    snapshot = f"{curated.site.url}/snapshot/{SNAPSHOT_DATE}/simple/"
    result = uv_install(snapshot, tmp_path, "dated-lib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path) == {"dated-lib": "1.0"}


def test_a_snapshot_of_a_bad_date_is_a_404_that_says_why(curated: CuratedSite) -> None:
    response = httpx.get(curated.site.url + "/snapshot/2024-13-01/simple/")
    assert response.status_code == 404
    assert "YYYY-MM-DD" in response.text


def test_metrics_and_events_record_the_requests(curated: CuratedSite, tmp_path: Path) -> None:
    result = pip_install(curated.index_url, tmp_path, "dated-lib==1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert httpx.get(curated.index_url + "no-such-project/").status_code == 404
    text = httpx.get(curated.site.url + "/metrics").text
    assert 'packyard_http_requests_total{family="simple",status="200"}' in text
    assert 'packyard_http_requests_total{family="simple",status="404"}' in text
    assert 'packyard_http_request_duration_seconds_bucket{family="files",le="+Inf"}' in text
    assert "packyard_downloads_total{cache=" in text
    assert 'packyard_upstream_request_duration_seconds_count{upstream="json-upstream"}' in text
    # Events are handed to the writer in batches (within 0.2 s): wait for the last one.
    deadline = time.monotonic() + 10
    while True:
        events = [json.loads(line) for line in curated.events.read_text().splitlines()]
        missed = [e for e in events if e["event"] == "page-miss"]
        if any(e["project"] == "no-such-project" for e in missed) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    downloads = [e for e in events if e["event"] == "download"]
    assert any(
        e["filename"] == "dated_lib-1.0-py3-none-any.whl" and e["version"] == "1.0"
        for e in downloads
    )
    assert all(e["client_ip"] == "127.0.0.1" and e["user_agent"] for e in downloads)
    assert any(e["event"] == "page-miss" and e["project"] == "no-such-project" for e in events)
