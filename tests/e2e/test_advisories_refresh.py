"""`[advisories] source` as a URL: the server imports it on its own, one worker
of several imports, and a source that fails leaves the server serving.

The source is osv.dev's format (a zip of JSON records, made here from the
PyPA snapshot's `requests` and `django` records), served by the standard
library's `http.server` on 127.0.0.1.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from packyard.advisories.refresh import REFRESH_ACTOR
from tests.advisory_data import SNAPSHOT
from tests.e2e.servers import PYTHON, ServerProcess, free_port

PROJECTS = ("requests", "django")
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A web server with `all.zip`, `garbage.zip` (an HTML page) and nothing else."""
    root = tmp_path_factory.mktemp("osv-source")
    with zipfile.ZipFile(root / "all.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for project in PROJECTS:
            for path in sorted((SNAPSHOT / project).glob("*.yaml")):
                record = yaml.safe_load(path.read_text())
                archive.writestr(f"{record['id']}.json", json.dumps(record, default=str))
    (root / "garbage.zip").write_text("<html>Sign in to continue</html>")
    port = free_port()
    argv = [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)]
    with ServerProcess(argv, port, root.parent / f"osv-source-{port}.log", "/all.zip") as server:
        yield server


def serve(root: Path, source_url: str, workers: int = 1) -> ServerProcess:
    config = root / "packyard.toml"
    config.write_text(f'[advisories]\nsource = "{source_url}"\nrefresh_hours = 24\n')
    port = free_port()
    argv = [PYTHON, "-m", "packyard", "serve", "--config", str(config), "--upstream", "none"]
    argv += ["--data-dir", str(root / "data"), "--port", str(port), "--workers", str(workers)]
    return ServerProcess(argv, port, root / "packyard.log", "/healthz")


def scheduled_imports(data_dir: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(data_dir / "packyard.db") as database:
        rows = database.execute("SELECT actor, source, added FROM advisory_imports ORDER BY id")
        return [(actor, source, added) for actor, source, added in rows]


def wait_for(url: str) -> httpx.Response:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        response = httpx.get(url)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_the_server_imports_its_source_without_any_command(
    source: ServerProcess, tmp_path: Path
) -> None:
    url = source.url + "/all.zip"
    with serve(tmp_path, url, workers=2) as site:
        found = wait_for(site.url + "/osv/v1/vulns/PYSEC-2018-28")
        assert found.status_code == 200, found.text
        assert found.json()["affected"][0]["package"]["name"] == "requests"
        query = {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.19.0"}
        answer = httpx.post(site.url + "/osv/v1/query", json=query).json()
        assert "PYSEC-2018-28" in [vuln["id"] for vuln in answer["vulns"]]
        time.sleep(2)  # the other worker's turn: it finds the import done
        records = sum(len(list((SNAPSHOT / p).glob("*.yaml"))) for p in PROJECTS)
        assert scheduled_imports(tmp_path / "data") == [(REFRESH_ACTOR, url, records)]
    assert list((tmp_path / "data" / "spool").glob("advisories-*")) == []


@pytest.mark.parametrize("path", ["/missing.zip", "/garbage.zip"])
def test_a_source_that_fails_leaves_the_server_serving(
    source: ServerProcess, tmp_path: Path, path: str
) -> None:
    with serve(tmp_path, source.url + path) as site:
        log = tmp_path / "packyard.log"
        deadline = time.monotonic() + WAIT_SECONDS
        while "advisories-refresh-failed" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert httpx.get(site.url + "/healthz").status_code == 200
        assert httpx.get(site.url + "/simple/").status_code == 200
        assert httpx.get(site.url + "/osv/v1/vulns/PYSEC-2018-28").status_code == 404
        (line,) = [
            json.loads(text)
            for text in log.read_text().splitlines()
            if "advisories-refresh-failed" in text
        ]
        assert line["source"] == source.url + path
        assert ("HTTP 404" if path == "/missing.zip" else "is not a readable zip") in line["reason"]
    assert scheduled_imports(tmp_path / "data") == []
    assert list((tmp_path / "data" / "spool").glob("advisories-*")) == []


def test_shutdown_is_prompt_with_a_refresh_loop(source: ServerProcess, tmp_path: Path) -> None:
    site = serve(tmp_path, source.url + "/all.zip")
    site.start()
    started = time.monotonic()
    site.stop()
    assert time.monotonic() - started < 10  # a hung refresh would hold it 15 s, then a kill
