"""A packyard process in front of the hostile upstream of `hostile_upstream.py`."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from tests.e2e.servers import PYTHON, PackyardProcess, clean_environment


class SiteOverHostile(PackyardProcess):
    """`packyard serve` whose only upstream is `upstream_url` (`file_hosts` as given)."""

    def __init__(
        self, data_dir: Path, upstream_url: str, *, file_hosts: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(data_dir, upstreams=())
        config = data_dir.parent / f"{data_dir.name}.toml"
        lines = ["[[upstreams]]", f'url = "{upstream_url}"', "timeout = 10"]
        if file_hosts is not None:
            lines.append(f"file_hosts = {json.dumps(list(file_hosts))}")
        config.write_text("\n".join(lines) + "\n")
        self.argv += ["--config", str(config)]

    def events(self, kind: str) -> list[dict[str, object]]:
        """The event lines of `kind` written so far (events go to standard output)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"event": "{kind}"' in line:
                found.append(json.loads(line))
        return found

    def wait_for_event(self, kind: str, timeout: float = 5.0) -> list[dict[str, object]]:
        """The events are written in batches, within a fraction of a second."""
        deadline = time.monotonic() + timeout
        while not (found := self.events(kind)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    def cached_files(self) -> list[str]:
        root = self.data_dir / "cache" / "files"
        if not root.exists():
            return []
        return [p.name for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]

    def metadata_rows(self) -> list[tuple[str, str]]:
        """(project, blob key) of every row of `upstream_metadata` (SQLite)."""
        with sqlite3.connect(self.data_dir / "packyard.db") as db:
            rows = db.execute("SELECT project, blob_key FROM upstream_metadata").fetchall()
        return [(str(project), str(key)) for project, key in rows]

    def get(self, path: str, **headers: str) -> httpx.Response | str:
        """The response, or "broken" when the transfer broke off mid-body."""
        try:
            return httpx.get(self.url + path, headers=headers, timeout=30)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "broken"


def pip_download(index_url: str, requirement: str, dest: Path) -> tuple[int, str]:
    """`pip download --no-deps` from `index_url` into `dest`: (exit code, output)."""
    import subprocess

    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-deps",
            "--retries",
            "0",
            "--index-url",
            index_url,
            "-d",
            str(dest),
            requirement,
        ],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr
