"""A full disk: 507 Insufficient Storage naming the store, never a 500, nothing half-written.

The blob storage (`storage_url`) is a 20 MiB tmpfs the test mounts, filled
until 4 MiB are left; the database and the event log stay in the data
directory, on the ordinary disk. Wheels of 6 MiB (random, so incompressible)
then fit nowhere:

- twine's upload is refused with 507 and the message in the reason phrase;
- pip's download of an upstream wheel whose METADATA was read by ranges (it
  must be kept to be checked) is refused with 507 before any byte;
- a plain download of an upstream wheel that cannot be cached is streamed to
  the client whole and verified, and simply not cached;
- each full store is one `storage-full` line in the event log per interval;
- once space is freed, the same server stores again: no restart.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import pip_download, run
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, packyard
from tests.e2e.tmpfs import fill, mounted_tmpfs, temporary_files

pytestmark = pytest.mark.e2e
BIG = 6 * 1024 * 1024
LEFT = 4 * 1024 * 1024


@dataclass
class Site:
    server: PackyardProcess
    store: Path
    token: str
    root: Path
    plain: Path  # an upstream wheel nobody resolved: downloaded without a check
    filler: Path

    def events(self, kind: str) -> list[dict[str, object]]:
        lines = (self.root / "events.jsonl").read_text().splitlines()
        return [event for event in map(json.loads, lines) if event["event"] == kind]


def big_wheel(directory: Path, name: str, seed: int) -> Path:
    noise = random.Random(seed).randbytes(BIG)
    package = name.replace("-", "_")
    return build_wheel(directory, name, "1.0", extra_files={f"{package}/noise": noise})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("full-disk")
    dists = root / "dists"
    dists.mkdir()
    checked, plain = big_wheel(dists, "big-checked", 1), big_wheel(dists, "big-plain", 2)
    uploaded = datetime(2024, 1, 10, tzinfo=UTC)
    write_manifest(root / "upstream", [(checked, uploaded), (plain, uploaded)])
    config = root / "packyard.toml"
    with mounted_tmpfs(root / "store", "20m") as store:
        config.write_text(
            f'storage_url = "file://{store}"\n'
            "[cache]\nmetadata_read_ahead = false\n"  # `plain` must stay unresolved
            f'[telemetry]\nevents_file = "{root / "events.jsonl"}"\n'
        )
        with JsonUpstreamProcess(root / "upstream") as upstream:
            server = PackyardProcess(root / "data", upstreams=[upstream.index_url])
            server.environment["PACKYARD_CONFIG"] = str(config)
            env = clean_environment(**server.environment)
            data = ["--data-dir", str(server.data_dir)]
            for command in (["init"], ["user", "add", "alice"]):
                result = packyard(*command, *data, env=env)
                assert result.returncode == 0, result.stderr
            created = packyard("token", "create", "alice", *data, env=env)
            assert created.returncode == 0, created.stderr
            with server:
                filler = fill(store, LEFT)
                yield Site(
                    server, store, created.stdout.strip().splitlines()[-1], root, plain, filler
                )


def twine_upload(site: Site, wheel: Path) -> tuple[int, str]:
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.server.url + "/legacy/", "-u", "__token__"]
    result = run([*argv, "-p", site.token, str(wheel)])
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def stored(site: Site, area: str, name: str) -> list[Path]:
    """The wheels (not their `.metadata`) of `name` in the store's `area`."""
    return [path for path in (site.store / area).rglob(f"{name}-*.whl") if path.is_file()]


def test_an_upload_that_does_not_fit_is_refused_with_507_naming_the_store(site: Site) -> None:
    folder = site.root / "upload"
    folder.mkdir()
    wheel = big_wheel(folder, "acme-big", 3)

    code, output = twine_upload(site, wheel)

    assert code != 0
    assert "507 Insufficient Storage" in output, output
    message = f"Insufficient storage: the blob store file://{site.store}/files is full"
    assert message in output, output
    assert stored(site, "files", "acme_big") == []
    assert temporary_files(site.store) == []
    assert httpx.get(site.server.index_url + "acme-big/").status_code == 404


def test_pip_is_refused_with_507_a_wheel_that_must_be_kept_to_be_checked(
    site: Site, tmp_path: Path
) -> None:
    """pip reads the `.metadata` first (extracted by ranges and kept: it is small);
    the wheel must then be kept and read back to compare its METADATA, and
    there is no room for it: 507 before any byte, rather than a cut download."""
    result = pip_download(site.server.index_url, tmp_path, "big-checked")
    output = result.stdout + result.stderr

    assert result.returncode != 0
    assert "507" in output, output
    assert "Insufficient Storage" in output, output
    assert not list(tmp_path.glob("*.whl"))
    assert stored(site, "cache/files", "big_checked") == []
    assert temporary_files(site.store) == []
    refused = httpx.get(site.server.url + "/files/big-checked/big_checked-1.0-py3-none-any.whl")
    assert refused.status_code == 507
    assert refused.text.startswith(
        f"Insufficient storage: the blob store file://{site.store}/cache/files is full"
    )


def test_a_download_that_cannot_be_cached_is_still_served_whole(site: Site) -> None:
    url = f"{site.server.url}/files/big-plain/{site.plain.name}"

    first, second = httpx.get(url, timeout=60), httpx.get(url, timeout=60)

    expected = hashlib.sha256(site.plain.read_bytes()).hexdigest()
    for response in (first, second):
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == expected
    assert stored(site, "cache/files", "big_plain") == []
    assert temporary_files(site.store) == []


def test_each_full_store_is_in_the_event_log_once_per_interval(site: Site) -> None:
    """twine tried six times (it retries a 5xx five times) and pip and the plain
    download met the cache's full store more than once: one line per store
    within the interval, with its count."""
    full = site.events("storage-full")
    by_store: dict[object, list[dict[str, object]]] = {}
    for event in full:
        by_store.setdefault(event["store"], []).append(event)

    assert set(by_store) == {
        f"the blob store file://{site.store}/files",
        f"the blob store file://{site.store}/cache/files",
    }
    for events in by_store.values():
        assert len(events) == 1, events
        assert events[0]["count"] == 1
    refusals = [event for event in site.events("audit") if event["outcome"] == "refused"]
    assert any("Insufficient storage" in str(event["reason"]) for event in refusals)


def test_once_space_is_freed_the_same_server_stores_again(site: Site) -> None:
    folder = site.root / "after"
    folder.mkdir()
    wheel = big_wheel(folder, "acme-after", 4)
    site.filler.unlink()

    code, output = twine_upload(site, wheel)
    download = httpx.get(f"{site.server.url}/files/big-plain/{site.plain.name}", timeout=60)

    assert code == 0, output
    assert len(stored(site, "files", "acme_after")) == 1
    assert download.status_code == 200
    # The cache commits its copy once the whole body went out: it may land just after.
    deadline = time.monotonic() + 30
    while not stored(site, "cache/files", "big_plain") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(stored(site, "cache/files", "big_plain")) == 1
