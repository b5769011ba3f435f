"""`packyard import DIR`: good files are added, bad ones reported one line each."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.servers import PackyardProcess, init_store, packyard

pytestmark = pytest.mark.e2e


def test_import_reports_bad_files_and_keeps_the_good_ones(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "good-one", "1.0")
    (dists / "broken-1.0-py3-none-any.whl").write_bytes(b"this is not a zip file")
    renamed = build_wheel(tmp_path, "real-name", "1.0")
    renamed.rename(dists / "other_name-1.0-py3-none-any.whl")

    init_store(tmp_path / "data")
    result = packyard(
        "import", "--data-dir", str(tmp_path / "data"), "--upstream", "none", str(dists)
    )

    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("refused:")]
    assert len(problems) == 2, result.stderr
    assert any("broken-1.0-py3-none-any.whl" in line for line in problems)
    assert any("other_name-1.0-py3-none-any.whl" in line for line in problems)
    assert "1 added" in result.stdout


def test_a_running_server_sees_an_import_at_once(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    with PackyardProcess(tmp_path / "data") as site:
        assert httpx.get(site.index_url + "late-comer/").status_code == 404
        build_wheel(dists, "late-comer", "0.1")
        assert site.import_dir(dists).returncode == 0
        response = httpx.get(site.index_url + "late-comer/")
        assert response.status_code == 200
        assert "late_comer-0.1-py3-none-any.whl" in response.text


def test_importing_the_same_directory_twice_adds_nothing_new(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "twice", "1.0")
    data = str(tmp_path / "data")
    init_store(Path(data))
    assert packyard("import", "--data-dir", data, "--upstream", "none", str(dists)).returncode == 0
    again = packyard("import", "--data-dir", data, "--upstream", "none", str(dists))
    assert again.returncode == 0
    assert "0 added" in again.stdout
    assert "1 already present" in again.stdout
