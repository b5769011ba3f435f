"""A PostgreSQL outage under load: 503 with `Retry-After` and a message, never a 500;
what was served before goes on being served; the log stays small; all recovers
without a restart.

A PostgreSQL server of this module's own is stopped at once (`pg_ctl stop
--mode immediate`) while threads keep asking for an in-house page and file, a
cached upstream page and file, the project list, a browser page and `/readyz`,
and another keeps uploading; twine uploads during the outage and shows the
message. The server is then started again on its port, and the same
packyard process serves and stores again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import run
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, packyard
from tests.postgres import PostgresServer, PostgresUnavailable, postgres_skipped, running_postgres
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 5.0
LOADERS = 4


@dataclass
class Site:
    server: PackyardProcess
    postgres: PostgresServer
    token: str
    root: Path
    reads: dict[str, str]  # what each URL is, for messages

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if postgres_skipped():
        pytest.skip("PACKYARD_TEST_POSTGRES=skip")
    root = tmp_path_factory.mktemp("database-outage")
    public = root / "public"
    public.mkdir()
    wheel = build_wheel(public, "pub-lib", "1.0")
    write_manifest(root / "upstream", [(wheel, datetime(2024, 1, 10, tzinfo=UTC))])
    config = root / "packyard.toml"
    config.write_text(f'[telemetry]\nevents_file = "{root / "events.jsonl"}"\n')
    with ExitStack() as stack:
        try:
            postgres = stack.enter_context(running_postgres())
        except PostgresUnavailable as error:
            pytest.fail(str(error))
        url = stack.enter_context(postgres.database())
        upstream = stack.enter_context(JsonUpstreamProcess(root / "upstream"))
        server = PackyardProcess(root / "data", [upstream.index_url], database_url=url)
        server.environment["PACKYARD_CONFIG"] = str(config)
        env = clean_environment(**server.environment)
        data = ["--data-dir", str(server.data_dir)]
        for command in (["init"], ["user", "add", "alice"]):
            result = packyard(*command, *data, env=env)
            assert result.returncode == 0, result.stderr
        created = packyard("token", "create", "alice", *data, env=env)
        assert created.returncode == 0, created.stderr
        with server:
            site = Site(server, postgres, created.stdout.strip().splitlines()[-1], root, {})
            local = build_wheel(folder(site, "local"), "acme-local", "1.0")
            code, output = twine(site, local)
            assert code == 0, output
            site.reads = {
                "/simple/acme-local/": "an in-house page",
                f"/files/acme-local/{local.name}": "an in-house file",
                "/simple/pub-lib/": "a cached upstream page",
                f"/files/pub-lib/{wheel.name}": "a cached upstream file",
                "/simple/": "the project list",
            }
            for path in [*site.reads, "/project/acme-local/"]:  # warm every cache
                assert httpx.get(server.url + path, timeout=30).status_code == 200, path
            yield site


def folder(site: Site, name: str) -> Path:
    directory = site.root / name
    directory.mkdir()
    return directory


def twine(site: Site, wheel: Path) -> tuple[int, str]:
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.server.url + "/legacy/", "-u", "__token__"]
    result = run([*argv, "-p", site.token, str(wheel)])
    return result.returncode, " ".join((result.stdout + result.stderr).split())


@dataclass
class Load:
    """Requests made by threads until `stop`, each as (start time, what, status, Retry-After)."""

    site: Site
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, str, int | str, str | None]] = field(default_factory=list)

    def read(self) -> None:
        paths = [*self.site.reads, "/project/acme-local/", "/readyz"]
        with httpx.Client(base_url=self.site.server.url, timeout=30) as client:
            while not self.stop.is_set():
                for path in paths:
                    self._ask(path, partial(client.get, path))

    def upload(self) -> None:
        directory = folder(self.site, "load")
        with httpx.Client(timeout=30) as client:
            for number in range(1, 10_000):
                if self.stop.is_set():
                    return
                version = directory / str(number)
                version.mkdir()
                wheel = build_wheel(version, "acme-local", f"2.{number}")
                content_type, body = encode(
                    twine_form(wheel), (wheel.name, wheel.read_bytes(), None)
                )
                headers = {"content-type": content_type.decode()}
                post = partial(
                    client.post,
                    self.site.server.url + "/legacy/",
                    content=body,
                    headers=headers,
                    auth=("__token__", self.site.token),
                )
                self._ask("upload", post)

    def _ask(self, what: str, request: Callable[[], httpx.Response]) -> None:
        started = time.monotonic()
        try:
            response = request()
            answer: tuple[int | str, str | None] = (
                response.status_code,
                response.headers.get("retry-after"),
            )
        except httpx.TransportError as error:
            answer = (type(error).__name__, None)
        self.answers.append((started, what, *answer))

    def between(self, start: float, end: float) -> list[tuple[str, int | str, str | None]]:
        return [
            (what, status, retry) for at, what, status, retry in self.answers if start < at < end
        ]


def test_an_outage_under_load_is_503s_with_retry_after_and_recovers_without_a_restart(
    site: Site,
) -> None:
    load = Load(site)
    threads = [threading.Thread(target=load.read) for _ in range(LOADERS)]
    threads.append(threading.Thread(target=load.upload))
    log_before = site.server.log.stat().st_size
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        site.postgres.stop_for_a_while()
        down = time.monotonic()
        refused_wheel = build_wheel(folder(site, "during"), "acme-local", "3.0")
        code, twine_output = twine(site, refused_wheel)  # twine retries a 503 meanwhile
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
        up = time.monotonic()
        site.postgres.start_again()
        ready_at = wait_until_ready(site)
        time.sleep(1.0)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    log = site.server.log.read_bytes()[log_before:].decode(errors="replace")

    # twine showed why, with no flag.
    assert code != 0
    assert "503 Service Unavailable" in twine_output, twine_output
    assert "The database does not answer" in twine_output, twine_output
    # Never a 500, never a dropped connection, before, during or after.
    statuses = {status for _, _, status, _ in load.answers}
    assert statuses <= {200, 503}, sorted(map(str, statuses))
    during = load.between(down + 0.5, up)
    assert len(during) > 50, "the load did not run during the outage"
    for what, status, retry in during:
        if what in site.reads:
            assert status == 200, f"{site.reads[what]} ({what}) was not served: {status}"
        elif what in ("upload", "/readyz"):
            assert (status, retry) == (503, "5"), what
        else:  # a browser page: served if it needs nothing new from the database
            assert (status, retry) in {(200, None), (503, "5")}, what
    # The ordinary log: a line about the listener, no traceback; the event log:
    # one line for the whole outage (one per 10 s), counting every failure.
    assert "Traceback" not in log, log[-3000:]
    assert len(log) < 4096, log[-3000:]
    outage_lines = [
        line for line in site.events.read_text().splitlines() if "database-unavailable" in line
    ]
    assert 1 <= len(outage_lines) <= 2, outage_lines
    # Recovery: the same process serves and stores again.
    after = load.between(ready_at, float("inf"))
    assert after, "no request after the recovery"
    assert {status for _, status, _ in after} == {200}
    recovered = build_wheel(folder(site, "after"), "acme-local", "4.0")
    code, output = twine(site, recovered)
    assert code == 0, output
    assert recovered.name in httpx.get(site.server.index_url + "acme-local/").text


def wait_until_ready(site: Site, timeout: float = 60.0) -> float:
    """Poll `/readyz` until it answers 200; when it did (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(site.server.url + "/readyz", timeout=10).status_code == 200:
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError("/readyz did not turn ready after the outage")
