"""kill -9 mid-upload and mid-download leaves partial files; the next start removes
them, and the running server sweeps again, never touching a write in progress.

The server runs with `stale_temp_seconds = 2` and, where the running sweep is
under test, `temp_sweep_seconds = 1` (the defaults are an hour and ten
minutes), on SQLite in its data directory, with a JSON upstream whose wheel is
large enough to be caught mid-download.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import PackyardProcess, clean_environment, packyard
from tests.e2e.tmpfs import temporary_files
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
STALE = 2.0
BIG = 24 * 1024 * 1024


def big_wheel(directory: Path, name: str, version: str, seed: int) -> Path:
    noise = random.Random(seed).randbytes(BIG)
    package = name.replace("-", "_")
    return build_wheel(directory, name, version, extra_files={f"{package}/noise": noise})


@pytest.fixture(scope="module")
def upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[JsonUpstreamProcess, Path]]:
    root = tmp_path_factory.mktemp("crash-upstream")
    dists = root / "dists"
    dists.mkdir()
    wheel = big_wheel(dists, "big-public", "1.0", 1)
    write_manifest(root / "upstream", [(wheel, datetime(2024, 1, 10, tzinfo=UTC))])
    with JsonUpstreamProcess(root / "upstream") as process:
        yield process, wheel


def new_server(
    root: Path, upstream: JsonUpstreamProcess, *, sweep_every: float
) -> tuple[PackyardProcess, str]:
    config = root / "packyard.toml"
    config.write_text(
        f"stale_temp_seconds = {STALE}\ntemp_sweep_seconds = {sweep_every}\n"
        "[cache]\nmetadata_read_ahead = false\n"
    )
    server = PackyardProcess(root / "data", upstreams=[upstream.index_url])
    server.environment["PACKYARD_CONFIG"] = str(config)
    env = clean_environment(**server.environment)
    data = ["--data-dir", str(server.data_dir)]
    for command in (["init"], ["user", "add", "alice"]):
        assert packyard(*command, *data, env=env).returncode == 0
    created = packyard("token", "create", "alice", *data, env=env)
    assert created.returncode == 0, created.stderr
    return server, created.stdout.strip().splitlines()[-1]


def kill_9(server: PackyardProcess) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    server.process = None


def slow_body(body: bytes, stop_after: int | None, pause: float) -> Iterator[bytes]:
    """`body` in 256 KiB pieces with `pause` seconds between them; only the first
    `stop_after` bytes (then it hangs until the connection is gone), if given."""
    step = 256 * 1024
    for start in range(0, len(body), step):
        if stop_after is not None and start >= stop_after:
            time.sleep(60)
            return
        yield body[start : start + step]
        time.sleep(pause)


def upload_in_background(
    server: PackyardProcess, token: str, wheel: Path, *, stop_after: int | None, pause: float
) -> tuple[threading.Thread, list[object]]:
    content_type, body = encode(twine_form(wheel), (wheel.name, wheel.read_bytes(), None))
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.post(
                    server.url + "/legacy/",
                    content=slow_body(body, stop_after, pause),
                    headers={"content-type": content_type.decode()},
                    auth=("__token__", token),
                    timeout=120,
                )
            )
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_temporary_files(data: Path, count: int, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = temporary_files(data)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} temporary files appeared: {temporary_files(data)}")


def test_kill_9_mid_upload_and_mid_download_leaves_nothing_after_a_restart(
    tmp_path: Path, upstream: tuple[JsonUpstreamProcess, Path]
) -> None:
    index, public = upstream
    # No running sweep: the stalled writes below stop writing, so a sweep every
    # second would take their files for a crash's before the kill (under load,
    # before the test had seen both); only the start-up sweep is under test here.
    server, token = new_server(tmp_path, index, sweep_every=3600)
    data = server.data_dir
    wheel = big_wheel(tmp_path, "acme-big", "1.0", 2)
    server.start()
    try:
        upload_in_background(server, token, wheel, stop_after=BIG // 2, pause=0.0)
        with httpx.stream("GET", f"{server.url}/files/big-public/{public.name}") as download:
            assert download.status_code == 200
            # Held, not dropped: a dropped iterator closes the connection, and the
            # server would then remove its partial file itself, before the kill.
            chunks = download.iter_raw(64 * 1024)
            next(chunks)  # then reads no more: the server waits to send the rest
            leftovers = wait_for_temporary_files(data, 2)
            kill_9(server)
    finally:
        server.stop()
    in_cache = [path for path in leftovers if "cache" in path.parts]
    in_files = [path for path in leftovers if "cache" not in path.parts]
    assert in_cache, leftovers
    assert in_files, leftovers
    assert all(path.exists() for path in leftovers), "the kill left no partial file to sweep"
    time.sleep(STALE + 0.5)  # nothing writes to them any more: they are stale

    server.start()  # the start-up sweep, before any worker
    try:
        assert temporary_files(data) == []
        # The same downloads and uploads work, and leave nothing either.
        again = httpx.get(f"{server.url}/files/big-public/{public.name}", timeout=60)
        assert again.status_code == 200
        assert again.content == public.read_bytes()
    finally:
        server.stop()
    assert temporary_files(data) == []


def test_the_running_server_sweeps_leftovers_but_not_a_write_in_progress(
    tmp_path: Path, upstream: tuple[JsonUpstreamProcess, Path]
) -> None:
    index, _ = upstream
    server, token = new_server(tmp_path, index, sweep_every=1)
    data = server.data_dir
    with server:
        # A leftover of another process's crash, found by the periodic sweep.
        left = data / "files" / ".tmp" / "crashed.part"
        left.parent.mkdir(parents=True, exist_ok=True)
        left.write_bytes(b"half a wheel")
        old = time.time() - 60
        os.utime(left, (old, old))
        # An upload that takes longer than the threshold, its file always young.
        wheel = big_wheel(tmp_path, "acme-slow", "1.0", 3)
        thread, outcome = upload_in_background(server, token, wheel, stop_after=None, pause=0.05)
        deadline = time.monotonic() + 30
        while left.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        thread.join(timeout=120)

    assert not left.exists()
    [response] = outcome
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200, response.text
    assert temporary_files(data) == []
