"""`packyard advisories import PATH`, as an operator runs it (click's runner)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from packyard.cli import main
from tests.builders import make_local_store
from tests.unit.advisories.conftest import SNAPSHOT


def import_(path: Path, data_dir: Path) -> Result:
    runner = CliRunner(env={"PACKYARD_CONFIG": None, "PACKYARD_DATABASE_URL": None})
    return runner.invoke(main, ["advisories", "import", str(path), "--data-dir", str(data_dir)])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An existing store (`packyard init`'s): commands refuse to make one by accident."""
    make_local_store(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Three projects of the snapshot: one record withdrawn, one that cannot be read."""
    root = tmp_path / "vulns"
    for project in ("requests", "aiohttp", "binderhub"):
        shutil.copytree(SNAPSHOT / project, root / project)
    return root


def test_an_import_reports_what_it_did_then_a_second_changes_nothing(
    tree: Path, data_dir: Path
) -> None:
    first = import_(tree, data_dir)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    added = len(list(tree.rglob("*.yaml"))) - 1  # all but binderhub's unreadable one
    assert lines[0].startswith(f"added: {added} (PYSEC-")
    assert "PYSEC-2018-28" in first.stdout
    assert "withdrawn: 1 (PYSEC-2022-43059)" in lines
    assert lines[-2:] == ["unchanged: 0", "skipped: 1"]
    assert first.stderr.startswith(
        "skipped binderhub/PYSEC-2021-371.yaml: PYSEC-2021-371: affected[0]: range 1: "
        "fixed '0.2.0-n653' is not a PEP 440 version, skipped\n"
    )
    second = import_(tree, data_dir)
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines() == [
        "added: 0",
        "changed: 0",
        "withdrawn: 0",
        f"unchanged: {added}",
        "skipped: 1",
    ]


def test_a_changed_record_and_notes_are_listed(tree: Path, data_dir: Path) -> None:
    assert import_(tree, data_dir).exit_code == 0
    path = tree / "requests" / "PYSEC-2018-28.yaml"
    record = yaml.safe_load(path.read_text())
    record["modified"] = "2030-01-01T00:00:00Z"
    record["affected"][0]["ranges"].append({"type": "SEMVER", "events": [{"introduced": "0"}]})
    path.write_text(yaml.safe_dump(record))
    result = import_(tree, data_dir)
    assert "changed: 1 (PYSEC-2018-28)" in result.stdout.splitlines()
    assert (
        "note requests/PYSEC-2018-28.yaml: PYSEC-2018-28: affected[0]: range 2: "
        "type 'SEMVER' is not ECOSYSTEM, skipped"
    ) in result.stderr.splitlines()


def test_a_zip_of_json_records(tree: Path, tmp_path: Path, data_dir: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted((tree / "requests").iterdir()):
            record = yaml.safe_load(path.read_text())
            out.writestr(f"{record['id']}.json", json.dumps(record, default=str))
        out.writestr("../evil.json", "{}")
    result = import_(archive, data_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("added: 5 (PYSEC-")
    assert result.stderr == "skipped ../evil.json: a path outside the archive: skipped\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing", None, "does not exist"),
        ("all.zip", b"<html>404 Not Found</html>", "is not a readable zip"),
        ("notes.txt", b"hello", "is not a directory of OSV records"),
    ],
)
def test_an_unreadable_path_is_one_line_and_exit_1(
    tmp_path: Path, data_dir: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = import_(path, data_dir)
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert message in line
