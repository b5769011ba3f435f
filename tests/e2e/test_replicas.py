"""Replicas at scale: stateless processes on one PostgreSQL database and one bucket.

Two `--role index` replicas and one `--role upload` replica, each with an
empty data directory of its own, started with `--no-migrate` after one
`packyard migrate`, share a database of the session's PostgreSQL server and a
bucket of a SeaweedFS of this module's own (the last test stops and restarts
it). A counting upstream (`counting_upstream.py`) behind the index replicas
says how often its files were read. DESIGN §3: nothing a replica needs lives
in its own data directory (the index replicas keep throw-away copies of the
files they serve there); a write on one is seen by the others within a bound; a
crash never leaves a half-file that is served.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import obstore
import pytest
from obstore.store import S3Store
from sqlalchemy import create_engine, text

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install, run
from tests.e2e.servers import (
    BIN,
    PackyardProcess,
    ServerProcess,
    clean_environment,
    packyard,
)
from tests.e2e.test_upstream_metadata import counting_upstream, wheel_metadata
from tests.postgres import PostgresServer
from tests.seaweedfs import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    SeaweedServer,
    seaweedfs_for_tests,
)
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
T = TypeVar("T")

JSON = "application/vnd.pypi.simple.v1+json"
PREFIX = "packyard"
BIG = 40 * 1024 * 1024  # an in-house download that takes a while
BIG_UPSTREAM = 30 * 1024 * 1024  # an upstream file cached while it streams
MEDIUM = 2 * 1024 * 1024
FOLLOW_BOUND = 1.0  # seconds in which another replica must serve a write


@dataclass
class Cluster:
    """The running replicas, the services behind them, and the upstream's wheels."""

    index: tuple[PackyardProcess, PackyardProcess]
    upload: PackyardProcess
    upstream: ServerProcess
    seaweed: SeaweedServer
    bucket: str
    environment: dict[str, str]
    token: str
    root: Path
    wheels: dict[str, Path]

    @property
    def replicas(self) -> tuple[PackyardProcess, ...]:
        return (*self.index, self.upload)

    def replica(self, name: str, role: str) -> PackyardProcess:
        return new_replica(self.root / name, role, self.environment, self.upstream)

    def upload_file(self, path: Path) -> None:
        """A twine-shaped upload of `path` through the upload replica."""
        content_type, body = encode(twine_form(path), (path.name, path.read_bytes(), None))
        response = httpx.post(
            self.upload.url + "/legacy/",
            content=body,
            headers={"content-type": content_type.decode()},
            auth=("__token__", self.token),
            timeout=120,
        )
        assert response.status_code == 200, response.text

    def cached(self, key: str) -> bool:
        """The shared file cache's table records `key`."""
        engine = create_engine(self.environment["PACKYARD_DATABASE_URL"])
        try:
            with engine.connect() as connection:
                query = text("SELECT count(*) FROM cached_files WHERE key = :key")
                return bool(connection.scalar(query, {"key": key}))
        finally:
            engine.dispose()

    def dists(self, name: str) -> Path:
        directory = self.root / "dists" / name
        directory.mkdir(parents=True)
        return directory

    def bucket_store(self) -> S3Store:
        """A client of the cluster's bucket, with no prefix."""
        return S3Store(
            self.bucket,
            endpoint=self.seaweed.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            client_options={"allow_http": True},
        )

    def objects(self, area: str) -> dict[str, int]:
        """Key (under `PREFIX/area/`) -> size of every object in the bucket's area."""
        found: dict[str, int] = {}
        for batch in obstore.list(self.bucket_store(), prefix=f"{PREFIX}/{area}/"):
            for meta in batch:
                found[meta["path"].removeprefix(f"{PREFIX}/{area}/")] = meta["size"]
        return found


def new_replica(
    data_dir: Path, role: str, environment: dict[str, str], upstream: ServerProcess
) -> PackyardProcess:
    """A replica of `role` (not started) with an empty data directory of its own."""
    data_dir.mkdir()
    upstreams = [upstream.url + "/simple/"] if role in ("index", "all") else ["none"]
    server = PackyardProcess(data_dir, upstreams=upstreams)
    server.environment.update(environment)
    server.argv += ["--role", role, "--no-migrate"]
    return server


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns a value other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout} s: {what}")
        time.sleep(0.02)


def ready(server: PackyardProcess) -> bool:
    try:
        return httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def start_ready(server: PackyardProcess) -> None:
    server.start()
    wait_until(partial(ready, server), 30, f"{server.url}/readyz answers 200")


def sent(upstream: ServerProcess) -> tuple[int, int]:
    """(file bytes, file requests) the upstream has served so far."""
    counts = httpx.get(upstream.url + "/_sent").json()
    return int(counts["bytes"]), int(counts["requests"])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_key(path: Path) -> str:
    digest = sha256_of(path)
    return f"{digest[:2]}/{digest[2:4]}/{digest}/{path.name}"


def noise(seed: int, size: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)


def copy_of(server: PackyardProcess, area: str, key: str) -> Path | None:
    """The replica's local copy of the blob `key` of `area`, if it has one
    (`<data_dir>/blob-copies/<boot id>/<area>/<key>`, storage/local_copies.py)."""
    return next(iter(server.data_dir.glob(f"blob-copies/*/{area}/{key}")), None)


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedServer]:
    """A SeaweedFS of this module's own: a test stops and restarts it (skipped and
    failed as the session's `s3_server` is)."""
    with seaweedfs_for_tests() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    seaweed: SeaweedServer,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    upstream_dists = root / "upstream-dists"
    upstream_dists.mkdir()
    wheels = {
        "medium": build_wheel(
            upstream_dists, "rep-public", "1.0", extra_files={"rep_public/n": noise(1, MEDIUM)}
        ),
        "meta": build_wheel(
            upstream_dists, "rep-meta", "1.0", extra_files={"rep_meta/n": noise(2, MEDIUM)}
        ),
        "big": build_wheel(
            upstream_dists, "rep-huge", "1.0", extra_files={"rep_huge/n": noise(3, BIG_UPSTREAM)}
        ),
    }
    with postgres_server.database() as url:
        bucket = seaweed.create_bucket()
        environment = {"PACKYARD_DATABASE_URL": url, **seaweed.environment(bucket, PREFIX)}
        env = clean_environment(**environment)
        migrated = packyard("migrate", "--data-dir", str(root / "migrate"), env=env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        upstream = counting_upstream(root / "tree", list(wheels.values()))
        with upstream:
            index = (
                new_replica(root / "index-1", "index", environment, upstream),
                new_replica(root / "index-2", "index", environment, upstream),
            )
            upload = new_replica(root / "upload", "upload", environment, upstream)
            try:
                with ThreadPoolExecutor() as pool:  # the interpreters start at once
                    started = [pool.submit(start_ready, s) for s in (*index, upload)]
                    token = alice_token(root / "cli", env)
                    for future in started:
                        future.result()
                yield Cluster(
                    index, upload, upstream, seaweed, bucket, environment, token, root, wheels
                )
            finally:
                for server in (*index, upload):
                    server.stop()


def alice_token(data_dir: Path, env: dict[str, str]) -> str:
    """An API token of a new user `alice`, made as an operator would."""
    added = packyard("user", "add", "alice", "--data-dir", str(data_dir), env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    created = packyard("token", "create", "alice", "--data-dir", str(data_dir), env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    return created.stdout.strip().splitlines()[-1]


@pytest.fixture
def replicas(cluster: Cluster) -> Cluster:
    """The cluster with every replica running (a test may have killed one)."""
    for server in cluster.replicas:
        if server.process is None or server.process.poll() is not None:
            server.process = None
            start_ready(server)
    return cluster


def test_an_upload_is_installed_at_once_through_both_index_replicas(
    replicas: Cluster, tmp_path: Path
) -> None:
    first = build_wheel(replicas.dists("ryw-1"), "rep-ryw", "1.0")
    replicas.upload_file(first)
    for server in replicas.index:  # both have built (and keep) the project's page
        assert first.name in httpx.get(server.index_url + "rep-ryw/").text
    newer = build_wheel(replicas.dists("ryw-2"), "rep-ryw", "2.0")
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", replicas.upload.url + "/legacy/"]
    argv += ["-u", "__token__", "-p", replicas.token, str(newer)]

    uploaded = run(argv)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    # At once, no sleep: pip through each index replica, concurrently.
    results: dict[int, tuple[int, str, dict[str, str]]] = {}

    def install(n: int) -> None:
        target = tmp_path / f"pip-{n}"
        result = pip_install(replicas.index[n].index_url, target, "rep-ryw")
        results[n] = (result.returncode, result.stdout + result.stderr, installed(target))

    threads = [threading.Thread(target=install, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    for n in (0, 1):
        code, output, found = results[n]
        assert code == 0, f"index replica {n + 1}: {output}"
        assert found == {"rep-ryw": "2.0"}, f"index replica {n + 1}: {output}"


def test_a_yank_on_the_upload_replica_is_served_by_both_index_replicas_within_1_s(
    replicas: Cluster,
) -> None:
    wheel = build_wheel(replicas.dists("yank"), "rep-yank", "1.0")
    replicas.upload_file(wheel)
    for server in replicas.index:  # a page each replica has built before the yank
        wait_until(partial(yank_of, server, "rep-yank", wheel.name), 5, "the upload")

    started = time.monotonic()
    response = httpx.put(
        f"{replicas.upload.url}/api/v1/projects/rep-yank/releases/1.0/yank",
        json={"reason": "broken build"},
        auth=("__token__", replicas.token),
    )
    assert response.status_code == 200, response.text
    answered = time.monotonic() - started
    latencies = []
    for n, server in enumerate(replicas.index, 1):
        wait_until(
            partial(yank_of, server, "rep-yank", wheel.name, "broken build"),
            10,
            f"index replica {n} serves the yank",
        )
        latencies.append(time.monotonic() - started)

    observed = ", ".join(f"{t * 1000:.0f} ms" for t in latencies)
    assert max(latencies) < FOLLOW_BOUND, (
        f"the index replicas served the yank after {observed} "
        f"(the yank call took {answered * 1000:.0f} ms)"
    )


def yank_of(
    server: PackyardProcess, project: str, filename: str, reason: str | None = None
) -> bool:
    """`filename` is on `project`'s JSON page (and yanked for `reason`, if given)."""
    page = httpx.get(server.index_url + project + "/", headers={"Accept": JSON})
    if page.status_code != 200:
        return False
    yanks = {f["filename"]: f["yanked"] for f in page.json()["files"]}
    return filename in yanks and (reason is None or yanks[filename] == reason)


def test_an_upstream_file_and_its_metadata_are_fetched_once_for_all_replicas(
    replicas: Cluster,
) -> None:
    one, two = replicas.index
    wheel = replicas.wheels["medium"]
    url = f"/files/rep-public/{wheel.name}"
    before = sent(replicas.upstream)
    assert httpx.get(one.url + url, timeout=60).content == wheel.read_bytes()
    after_first = sent(replicas.upstream)
    assert after_first[1] - before[1] == 1
    assert after_first[0] - before[0] >= wheel.stat().st_size
    # The cache commits (blob, then row) just after the last byte went out; a
    # request racing that moment would fetch the file again, as it may.
    key = content_key(wheel)
    wait_until(partial(replicas.cached, key), 10, "the cached file's row")
    assert key in replicas.objects("cache/files")

    served = httpx.get(two.url + url, timeout=60)

    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == sha256_of(wheel)
    assert sent(replicas.upstream) == after_first, "replica 2 downloaded the file again"

    meta = replicas.wheels["meta"]
    metadata_path = f"/files/rep-meta/{meta.name}.metadata"
    first = httpx.get(one.url + metadata_path, timeout=60)
    assert first.status_code == 200, first.text
    assert first.content == wheel_metadata(meta)
    extracted = sent(replicas.upstream)
    assert extracted[1] > after_first[1]  # replica 1 read the wheel's ranges
    assert extracted[0] - after_first[0] < MEDIUM  # ... not the whole wheel

    again = httpx.get(two.url + metadata_path, timeout=60)

    assert again.status_code == 200, again.text
    assert again.content == first.content
    assert sent(replicas.upstream) == extracted, "replica 2 read the wheel again"
    digest = hashlib.sha256(first.content).hexdigest()
    page = httpx.get(two.index_url + "rep-meta/", headers={"Accept": JSON}).json()
    assert page["files"][0]["core-metadata"] == {"sha256": digest}


def test_a_replica_killed_mid_download_leaves_the_other_serving_whole_files(
    replicas: Cluster,
) -> None:
    one, two = replicas.index
    wheel = build_wheel(
        replicas.dists("big"), "rep-big", "1.0", extra_files={"rep_big/n": noise(4, BIG)}
    )
    replicas.upload_file(wheel)
    url = f"/files/rep-big/{wheel.name}"
    assert one.process is not None
    with (
        httpx.stream("GET", one.url + url, timeout=30) as doomed,
        httpx.stream("GET", two.url + url, timeout=30) as survivor,
    ):
        assert doomed.status_code == survivor.status_code == 200
        doomed_chunks = doomed.iter_bytes(256 * 1024)
        received = hashlib.sha256()
        size = 0
        for chunk in survivor.iter_bytes(256 * 1024):  # a slow client of replica 2
            received.update(chunk)
            size += len(chunk)
            if one.process.poll() is None:
                next(doomed_chunks)
                if size >= BIG // 4:
                    one.process.send_signal(signal.SIGKILL)
                    one.process.wait(10)
            time.sleep(0.001)
        with pytest.raises(httpx.TransportError):
            for _ in doomed_chunks:  # what the dead replica's socket still held
                pass
    assert size == wheel.stat().st_size
    assert received.hexdigest() == sha256_of(wheel)
    again = httpx.get(two.url + url, timeout=60)
    assert hashlib.sha256(again.content).hexdigest() == sha256_of(wheel)


def test_a_replica_killed_while_caching_never_leaves_a_partial_file(replicas: Cluster) -> None:
    one, two = replicas.index
    wheel = replicas.wheels["big"]
    size = wheel.stat().st_size
    url = f"/files/rep-huge/{wheel.name}"
    key = content_key(wheel)
    before = sent(replicas.upstream)
    assert one.process is not None
    with httpx.stream("GET", one.url + url, timeout=30) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes(64 * 1024)
        for _ in range(4):  # a slow client: the rest waits upstream and in the sockets
            next(chunks)
            time.sleep(0.05)
        mid_stream = sent(replicas.upstream)
        one.process.send_signal(signal.SIGKILL)
        one.process.wait(10)
    assert mid_stream[0] - before[0] < size, "replica 1 had read the whole file already"
    assert key not in replicas.objects("cache/files")
    assert not [k for k in replicas.objects("cache/files") if k.startswith(".tmp/")]

    served = httpx.get(two.url + url, timeout=120)

    assert served.status_code == 200
    assert len(served.content) == size
    assert hashlib.sha256(served.content).hexdigest() == sha256_of(wheel)
    assert sent(replicas.upstream)[1] > mid_stream[1]  # replica 2 fetched it itself
    cached = wait_until(lambda: replicas.objects("cache/files").get(key), 20, "the cached blob")
    assert cached == size


def test_a_second_download_through_a_replica_is_served_from_its_local_copy(
    replicas: Cluster,
) -> None:
    one, _ = replicas.index
    wheel = build_wheel(
        replicas.dists("copied"),
        "rep-copied",
        "1.0",
        extra_files={"rep_copied/n": noise(5, MEDIUM)},
    )
    replicas.upload_file(wheel)
    url = f"/files/rep-copied/{wheel.name}"
    key = content_key(wheel)
    assert copy_of(one, "files", key) is None

    first = httpx.get(one.url + url, timeout=60)

    assert first.status_code == 200
    assert first.content == wheel.read_bytes()
    copy = wait_until(lambda: copy_of(one, "files", key), 10, "replica 1's copy of the wheel")
    assert copy.read_bytes() == wheel.read_bytes()
    bucket, path = replicas.bucket_store(), f"{PREFIX}/files/{key}"
    obstore.delete(bucket, path)  # so the next download can only come from the copy
    try:
        second = httpx.get(one.url + url, timeout=60)
        assert second.status_code == 200
        assert second.content == first.content
    finally:
        obstore.put(bucket, path, wheel.read_bytes())
    # The copies are throw-away: without them (a new pod) the bucket serves again.
    shutil.rmtree(one.data_dir / "blob-copies")
    third = httpx.get(one.url + url, timeout=60)
    assert third.content == first.content


def test_a_replica_with_an_empty_data_directory_serves_search_and_pages(
    replicas: Cluster,
) -> None:
    wheel = build_wheel(
        replicas.dists("browse"), "rep-browsed", "3.1", summary="Seen by every replica"
    )
    replicas.upload_file(wheel)
    browser = replicas.replica("browser", "browser")
    with browser:
        wait_until(lambda: ready(browser), 30, "the browser replica is ready")

        page = httpx.get(browser.url + "/project/rep-browsed/")
        assert page.status_code == 200, page.text
        assert "3.1" in page.text
        assert "Seen by every replica" in page.text
        wait_until(
            lambda: "rep-browsed" in httpx.get(browser.url + "/search?q=browsed").text,
            5,
            "the search finds the project",
        )


def test_a_stopped_store_is_a_503_naming_it_and_the_replicas_recover(replicas: Cluster) -> None:
    one, two = replicas.index
    wheel = build_wheel(replicas.dists("outage"), "rep-outage", "1.0")
    replicas.upload_file(wheel)
    url = f"/files/rep-outage/{wheel.name}"
    assert httpx.get(one.url + url).content == wheel.read_bytes()
    # Replica 1 has just served the file: it keeps a copy, and replica 2 none.
    wait_until(lambda: copy_of(one, "files", content_key(wheel)), 10, "replica 1's copy")
    store = f"s3://{replicas.bucket}/{PREFIX}"
    fresh = build_wheel(replicas.dists("outage-new"), "rep-outage", "2.0")
    replicas.seaweed.stop(keep_files=True)
    try:
        answers = {
            f"index {n} file": httpx.get(server.url + url, timeout=60)
            for n, server in enumerate(replicas.index, 1)
        }
        answers["index 1 metadata"] = httpx.get(one.url + url + ".metadata", timeout=60)
        answers["index 2 page"] = httpx.get(two.index_url + "rep-outage/", timeout=60)
        cached = f"/files/rep-public/{replicas.wheels['medium'].name}"
        answers["index 2 cached file"] = httpx.get(two.url + cached, timeout=60)
        answers["index 1 readyz"] = httpx.get(one.url + "/readyz", timeout=60)
        answers["index 2 readyz"] = httpx.get(two.url + "/readyz", timeout=60)
        answers["upload readyz"] = httpx.get(replicas.upload.url + "/readyz", timeout=60)
        content_type, body = encode(twine_form(fresh), (fresh.name, fresh.read_bytes(), None))
        answers["upload"] = httpx.post(
            replicas.upload.url + "/legacy/",
            content=body,
            headers={"content-type": content_type.decode()},
            auth=("__token__", replicas.token),
            timeout=60,
        )
    finally:
        replicas.seaweed.start()

    statuses = {what: r.status_code for what, r in answers.items()}
    assert 500 not in statuses.values(), statuses
    # What a replica has served, it serves on from its own copy.
    assert statuses["index 1 file"] == 200
    assert answers["index 1 file"].content == wheel.read_bytes()
    for what in ("index 2 file", "upload"):
        assert statuses[what] == 503, (what, answers[what].text)
        assert store in answers[what].text, (what, answers[what].text)
        assert answers[what].headers.get("retry-after"), what
    for what in ("index 1 readyz", "index 2 readyz", "upload readyz"):
        assert statuses[what] == 503, (what, answers[what].text)
        reasons = json.dumps(answers[what].json()["reasons"])
        assert store in reasons, (what, reasons)

    # The same processes serve again once the store is back: no restart.
    for server in replicas.replicas:
        wait_until(partial(ready, server), 30, f"{server.url} is ready again")
    for server in replicas.index:
        assert httpx.get(server.url + url, timeout=30).content == wheel.read_bytes()
    replicas.upload_file(fresh)
    assert fresh.name in httpx.get(two.index_url + "rep-outage/").text


def test_the_replicas_kept_nothing_of_their_own_that_a_replica_needs(replicas: Cluster) -> None:
    """No database and no blob landed in a replica's data directory, but for the
    throw-away copies of served blobs (a replica without them serves all the same:
    test_a_second_download_through_a_replica_is_served_from_its_local_copy)."""
    for server in replicas.replicas:
        kept = [
            p.name
            for p in server.data_dir.rglob("*")
            if p.is_file() and "blob-copies" not in p.relative_to(server.data_dir).parts
        ]
        assert not [name for name in kept if name.endswith((".db", ".whl", ".metadata"))], kept
