"""`storage.sweep`: temporary files nothing wrote to for `max_age` seconds are removed,
in every store and folder given; younger ones are someone's write in progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from packyard.storage.filesystem import FilesystemBlobStore
from packyard.storage.sweep import PAGE_TEMP_PATTERN, TempSweeper


def aged(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


@pytest.mark.anyio
async def test_stale_temporary_files_go_and_young_ones_stay(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "files")
    crashed = aged(store.root / ".tmp" / "a.part", 120)
    writing = aged(store.root / ".tmp" / "b.part", 1)
    page = aged(tmp_path / "pages" / "pypi-1234" / ".x1y2.part", 120)
    kept_page = aged(tmp_path / "pages" / "pypi-1234" / "requests.json", 120)
    spooled = aged(tmp_path / "spool" / "packyard-x.whl", 120)
    sweeper = TempSweeper(
        [store],
        [(tmp_path / "spool", "*"), (tmp_path / "pages", PAGE_TEMP_PATTERN)],
        max_age=60,
        interval=600,
    )

    assert await sweeper.sweep_once() == 3

    assert not crashed.exists()
    assert not page.exists()
    assert not spooled.exists()
    assert writing.exists()
    assert kept_page.exists()  # a page, not a temporary file


@pytest.mark.anyio
async def test_missing_folders_are_nothing_to_sweep(tmp_path: Path) -> None:
    sweeper = TempSweeper(
        [FilesystemBlobStore(tmp_path / "none")], [(tmp_path / "spool", "*")], max_age=1, interval=1
    )

    assert await sweeper.sweep_once() == 0
