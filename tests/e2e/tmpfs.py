"""A small tmpfs the tests mount (as root) to fill a disk on purpose, unmounted afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "20m") mounted on `directory`, unmounted on exit.

    Skips the test when not run as root (mounting needs it); CI runs as root.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        # Lazy: a process of the test still holding a file there cannot keep it mounted.
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill(directory: Path, leave_bytes: int) -> Path:
    """Write a file that leaves about `leave_bytes` free on `directory`'s file system."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    filler = directory / "filler"
    with filler.open("ab") as file:
        file.write(bytes(max(0, free - leave_bytes)))
    return filler


def temporary_files(root: Path) -> list[Path]:
    """Every file under a `.tmp` (or `.part`) anywhere below `root`: writes not finished."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and (".tmp" in path.parts or path.name.endswith(".part"))
    )
