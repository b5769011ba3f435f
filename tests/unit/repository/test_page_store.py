"""PageStore: pages round-trip through disk with every field and their fetch time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus
from packyard.repository.page_store import PageStore

DETAIL = ProjectDetail(
    name="demo",
    files=(
        DistFile(
            "demo-1.0-py3-none-any.whl",
            url="https://user:token@upstream.test/files/demo-1.0-py3-none-any.whl",
            hashes={"sha256": "a" * 64},
            requires_python=">=3.9",
            core_metadata={"sha256": "b" * 64},
            yanked="broken",
            size=123,
            upload_time=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            provenance="https://upstream.test/provenance",
            gpg_sig=False,
        ),
        DistFile("demo-1.0.tar.gz", url="https://upstream.test/f", core_metadata=True, yanked=True),
    ),
    versions=("1.0",),
    status=ProjectStatus("deprecated", "use other"),
    source="pypi",
    private={"hidden": [{"filename": "x", "reason": "policy"}]},
)


def test_a_page_round_trips_with_every_field_and_its_fetch_time(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.save_project("demo", DETAIL, 1_700_000_000.0)
    loaded = store.load_project("demo")
    assert loaded is not None
    assert loaded.value == DETAIL
    assert loaded.fetched_at == 1_700_000_000.0
    store.touch("demo", 1_700_000_600.0)
    assert (again := store.load_project("demo")) is not None
    assert again.fetched_at == 1_700_000_600.0


def test_the_project_list_round_trips(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    projects = ProjectList((ProjectEntry("Demo_Pkg"), ProjectEntry("other")))
    store.save_list(projects, 1000.0)
    assert (loaded := store.load_list()) is not None
    assert loaded.value == projects


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 99}', b'{"format": 1}', b"[]"])
def test_an_unreadable_page_counts_as_absent(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "demo.json").write_bytes(content)
    assert PageStore(tmp_path).load_project("demo") is None


def test_names_that_are_not_normalised_never_become_paths(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "pages")
    assert store.load_project("../secret") is None
    with pytest.raises(ValueError, match="normalised"):
        store.save_project("../secret", DETAIL, 0.0)
    store.delete_project("../secret")
    assert not (tmp_path / "secret.json").exists()


def test_a_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.save_project("demo", DETAIL, 0.0)
    store.save_project("demo", DETAIL, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]
    assert (tmp_path / "demo.json").stat().st_mode & 0o077 == 0  # may hold credentials
