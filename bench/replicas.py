"""Scale-out: packyard as stateless replicas on PostgreSQL and S3 (SeaweedFS).

The benchmarks of the issue "Many stateless replicas on PostgreSQL and S3", in
one run, each phase side by side with its reference:

- `download`: a warm big wheel (the largest in pip's find-links, or `--wheel`)
  imported into packyard with `storage_url` on S3 and, separately, on the
  filesystem (both on PostgreSQL), the same file served by nginx, and the
  same object fetched straight from SeaweedFS (a presigned GET: the store's
  own ceiling here); `--downloads` curl downloads in a row on one connection
  per sample, interleaved per repeat. MB/s. On S3 three rows: warm (served
  from the replica's local copy, `storage/local_copies.py`), first download
  (the replica's copies removed before each download, as a new replica's
  empty data directory: streamed from S3 while the copy is filled; one
  connection per download), and a replica with `[s3] local_copies_mb = 0`
  (every download streamed). A last row reads the object with obstore in a
  process pinned like a replica, without serving it: the read side of
  packyard's S3 path alone.
- `freshness`: replica A (`--role all`) and replica B (`--role index`) on one
  PostgreSQL and one bucket; `--writes` file yanks toggled through A's JSON
  API, each timed from A's answer to the moment B's `/simple/<project>/`
  (PEP 691 JSON, polled every 1 ms on a keep-alive connection) shows it.
- `pages`: warm in-house project pages (200 generated projects on PostgreSQL +
  S3), wrk for `--duration` s: one index replica with `--connections`, against
  two index replicas each loaded by its own wrk with half the connections at
  the same time (there is no load balancer; the sum is reported).
- `cold`: `pip`/`uv pip install --dry-run` of the shared harness's
  requirements through replica 1, then through replica 2 (its own empty data
  directory, the same PostgreSQL database and bucket), against one replica
  twice; the upstream is nginx over the local mirror, whose access log
  (`$bytes_sent`) counts the bytes and requests it served.

CPUs (the machine has 2): packyard and nginx on `--server-cpus`, curl, wrk,
the pollers and the clients on `--client-cpus`, PostgreSQL and SeaweedFS (the
"other machines") on `--backend-cpus`; the second index replica of `pages`
runs on `--second-cpus`. Everything listens on and talks to 127.0.0.1 only;
every packyard has `--upstream none` or the local nginx. Every process started
here is ended by its own process group; PostgreSQL and SeaweedFS by the test
helpers that started them (tests/postgres.py, tests/seaweedfs.py). packyard
runs from a copy of HEAD's `src` taken at start (`--tree working` for the
checkout as it is), since others edit the checkout while a run goes on.

    .venv/bin/python bench/replicas.py                     # all phases, ~8 minutes
    .venv/bin/python bench/replicas.py --phases freshness --writes 50

Writes a Markdown report (`--out`, default bench/replicas-run.md) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import obstore
from obstore.store import S3Store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.builders import build_wheel  # noqa: E402
from tests.postgres import PostgresServer, free_port, running_postgres  # noqa: E402
from tests.seaweedfs import SeaweedServer, SeaweedUnavailable, running_seaweedfs  # noqa: E402

HOST = "127.0.0.1"
HARNESS = REPO.parent / "shared" / "bench"
PACKYARD = [sys.executable, "-m", "packyard"]
TEMP = Path(tempfile.gettempdir())
START_TIMEOUT = 120.0
PORT_ATTEMPTS = 3
COMMAND_TIMEOUT = 600.0
CLIENT_TIMEOUT = 180.0
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
PHASES = ("download", "freshness", "pages", "cold")
TOOLS = ("pip", "uv")
SETUPS = ("one replica twice", "two replicas")
PAGE_PROJECTS = 200
S3_WARM = "packyard S3, warm (local copy)"
S3_FIRST = "packyard S3, first download (from S3, fills the copy)"
S3_STREAMED = "packyard S3, local copies off"
NO_COPIES = "[s3]\nlocal_copies_mb = 0\n"
PAGE_VERSIONS = 3

NGINX_CONF = """worker_processes 1;
daemon off;
pid {state}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format counted '$status $bytes_sent $request_uri';
    access_log {access_log} counted;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {state}/tmp;
    server {{
        listen {host}:{port};
        root {root};
        index index.html;
    }}
}}
"""


@dataclass(frozen=True)
class Options:
    phases: tuple[str, ...]
    work: Path
    source: Path
    commit: str
    wheel: Path
    www: Path
    requirements: Path
    venvs: Path
    server_cpus: str
    second_cpus: str
    client_cpus: str
    backend_cpus: str
    repeats: int
    downloads: int
    writes: int
    duration: int
    connections: int
    cold_repeats: int


@dataclass
class Report:
    """What the run found: Markdown sections in order, and the headline figures."""

    sections: list[str] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)

    def add(self, title: str, lines: Sequence[str]) -> None:
        self.sections.append("\n".join([f"## {title}", "", *lines, ""]))
        print(self.sections[-1], flush=True)


# --- processes -------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pinned(cpus: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def pin_pid(cpus: str, pid: int) -> None:
    """Move every thread of a running process to `cpus` (its later children inherit it)."""
    if cpus:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", cpus, str(pid)],
            check=True,
            timeout=30,
            capture_output=True,
        )


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without proxies or any tool's settings, plus `extra`."""
    prefixes = ("PIP_", "UV_", "PACKYARD_", "AWS_")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith(prefixes)
    }
    env.update({"NO_PROXY": "*", "no_proxy": "*", "PIP_CONFIG_FILE": os.devnull})
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env.update(extra)
    return env


class Process:
    """A server in its own process group, ended by that group (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log = log_path
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, url: str) -> None:
        """Return once `url` answers below 500. Raises RuntimeError on exit or timeout."""
        deadline = time.monotonic() + START_TIMEOUT
        split = urlsplit(url)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv} exited early; see {self.log}")
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection(HOST, split.port, timeout=2)
                try:
                    connection.request("GET", split.path)
                    if connection.getresponse().status < 500:
                        return
                finally:
                    connection.close()
            time.sleep(0.1)
        raise RuntimeError(f"{self.argv} not ready after {START_TIMEOUT:.0f} s; see {self.log}")

    def output(self) -> str:
        """What this process wrote to its log so far."""
        with self.log.open("rb") as log_file:
            log_file.seek(self._log_start)
            return log_file.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time of every live process in the group, in seconds."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(fields[2]) == self.process.pid:  # pgrp
                    total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # children the leader left behind


@contextlib.contextmanager
def serving(make: Callable[[int], Process], ready_path: str) -> Iterator[tuple[Process, str]]:
    """`make(port)` on a free port, ready; (process, base URL); stopped afterwards.

    Others' tests take ports on this machine too: a port taken between choosing
    and binding it is retried on another, up to `PORT_ATTEMPTS` times.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        process = make(port)
        base = f"http://{HOST}:{port}"
        try:
            process.wait_ready(base + ready_path)
        except RuntimeError:
            process.stop()
            if attempt < PORT_ATTEMPTS and "already in use" in process.output().lower():
                log(f"port {port} was taken; trying another")
                continue
            raise
        try:
            yield process, base
        finally:
            process.stop()
        return


# --- PostgreSQL, S3 and packyard --------------------------------------------------------


@dataclass
class Backends:
    """One PostgreSQL and one SeaweedFS for the whole run; a database and a bucket each."""

    postgres: PostgresServer
    seaweed: SeaweedServer
    work: Path
    source: Path
    databases: contextlib.ExitStack

    def site(self, name: str, *, s3: bool) -> Site:
        """A new, migrated database (and, with `s3`, a new bucket): one shared state."""
        database = self.databases.enter_context(self.postgres.database())
        env = {"PACKYARD_DATABASE_URL": database, "PYTHONPATH": str(self.source)}
        if s3:
            env.update(self.seaweed.environment(self.seaweed.create_bucket(), prefix=name))
        else:  # one directory for the replicas, as a shared volume would be
            blobs = self.work / "state" / f"{name}-blobs"
            blobs.mkdir(parents=True)
            env["PACKYARD_STORAGE_URL"] = blobs.as_uri()
        site = Site(name, env, self.work)
        site.command("migrate")
        return site


@contextlib.contextmanager
def backends(options: Options) -> Iterator[Backends]:
    with running_postgres() as postgres, contextlib.ExitStack() as databases:
        seaweed = start_seaweed(databases)
        postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
        pin_pid(options.backend_cpus, postmaster)
        # The helper keeps its process private; here only to pin it and read its CPU time.
        assert seaweed._process is not None
        pin_pid(options.backend_cpus, seaweed._process.pid)
        yield Backends(postgres, seaweed, options.work, options.source, databases)


def start_seaweed(stack: contextlib.ExitStack) -> SeaweedServer:
    """A SeaweedFS stopped with `stack`; started again if others' tests took a port of it
    between its choice and its bind (the helper retries only some of those failures)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return stack.enter_context(running_seaweedfs())
        except SeaweedUnavailable as error:
            if attempt == PORT_ATTEMPTS or "not available" not in str(error):
                raise
            log("a port of SeaweedFS was taken; starting it again")
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Site:
    """The shared state of some replicas: a PostgreSQL database, maybe a bucket."""

    name: str
    env: dict[str, str]
    work: Path

    def data_dir(self, replica: str) -> Path:
        path = self.work / "state" / f"{self.name}-{replica}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def command(self, *args: str) -> str:
        """Run `packyard ARGS` on this site (with a scratch data directory); its stdout.

        Raises:
            RuntimeError: it failed (its output is in the message).
        """
        argv = [*PACKYARD, *args, "--data-dir", str(self.data_dir("cli"))]
        result = subprocess.run(
            argv,
            env=clean_environment(self.env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}:\n{output}")
        return result.stdout

    def token(self) -> str:
        """An API token of a new administrator."""
        self.command("user", "add", "bench-admin", "--admin")
        return self.command("token", "create", "bench-admin").strip().splitlines()[-1]

    def replica(
        self,
        name: str,
        cpus: str,
        port: int,
        *,
        role: str = "all",
        upstream: str = "none",
        config: str | None = None,
    ) -> Process:
        """`packyard serve` on its own (empty) data directory, not yet ready;
        `config`, if given, is its TOML settings file's text."""
        argv = [*PACKYARD, "serve", "--data-dir", str(self.data_dir(name)), "--host", HOST]
        argv += ["--port", str(port), "--role", role, "--upstream", upstream, "--no-migrate"]
        if config is not None:
            config_file = self.work / "state" / f"{self.name}-{name}.toml"
            config_file.write_text(config)
            argv += ["--config", str(config_file)]
        log_path = self.work / "logs" / f"{self.name}-{name}.log"
        return Process(pinned(cpus, argv), clean_environment(self.env), log_path)


@contextlib.contextmanager
def replica(
    site: Site,
    name: str,
    cpus: str,
    *,
    role: str = "all",
    upstream: str = "none",
    config: str | None = None,
) -> Iterator[tuple[Process, str]]:
    def make(port: int) -> Process:
        return site.replica(name, cpus, port, role=role, upstream=upstream, config=config)

    with serving(make, "/readyz") as running:
        yield running


@contextlib.contextmanager
def nginx(options: Options, name: str, root: Path) -> Iterator[tuple[Process, str, Path]]:
    """nginx over `root` (1 worker, sendfile); (process, base URL, access log)."""
    state = options.work / "state" / name
    (state / "tmp").mkdir(parents=True)
    access_log = state / "access.log"
    logs = options.work / "logs" / f"{name}.log"

    def make(port: int) -> Process:
        conf = NGINX_CONF.format(
            state=state, host=HOST, port=port, root=root, access_log=access_log
        )
        (state / "nginx.conf").write_text(conf)
        argv = ["nginx", "-e", "stderr", "-p", str(state), "-c", str(state / "nginx.conf")]
        return Process(pinned(options.server_cpus, argv), clean_environment({}), logs)

    with serving(make, "/") as (process, base):
        yield process, base, access_log


def get_json(base: str, path: str) -> Any:
    split = urlsplit(base)
    connection = http.client.HTTPConnection(HOST, split.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept": JSON_ACCEPT})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {base}{path}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        connection.close()


def file_url(base: str, project: str, filename: str) -> str:
    """The URL of `filename` as the replica's own JSON page links it."""
    page = get_json(base, f"/simple/{project}/")
    for entry in page["files"]:
        if entry["filename"] == filename:
            return urljoin(f"{base}/simple/{project}/", str(entry["url"]))
    raise RuntimeError(f"{filename} is not on {base}/simple/{project}/")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-share * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


# --- phase 1: big-wheel download -------------------------------------------------------


def curl_seconds(options: Options, url: str, size: int, downloads: int) -> float:
    """`downloads` downloads of `url` in a row on one connection; seconds in all.

    Raises:
        RuntimeError: a download failed or had the wrong size.
    """
    argv = ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "60"]
    argv += ["--write-out", "%{http_code} %{size_download} %{time_total}\\n"]
    for _ in range(downloads):
        argv += ["--output", "/dev/null", url]
    result = subprocess.run(
        pinned(options.client_cpus, argv), capture_output=True, text=True, timeout=600, check=False
    )
    rows = [line.split() for line in result.stdout.splitlines()]
    if result.returncode != 0 or len(rows) != downloads:
        raise RuntimeError(f"curl {url}: exit {result.returncode} {result.stderr.strip()}")
    if any(row[0] != "200" or int(row[1]) != size for row in rows):
        raise RuntimeError(f"curl {url}: bad download {rows}")
    return sum(float(row[2]) for row in rows)


def curl_sample(options: Options, url: str, size: int) -> float:
    """`options.downloads` downloads of `url` in a row on one connection; MB/s overall."""
    return size * options.downloads / curl_seconds(options, url, size, options.downloads) / 1e6


def warm_copy_sample(options: Options, url: str, size: int, copies: Path, name: str) -> float:
    """`curl_sample` of a replica's local copy: one uncounted download first if the
    copy is not there (a first-download sample removed it).

    Raises:
        RuntimeError: still no copy after that download.
    """
    if not has_copy(copies, name):
        curl_seconds(options, url, size, 1)
        wait_for_copy(copies, name)
    return curl_sample(options, url, size)


def first_download_sample(options: Options, url: str, size: int, copies: Path, name: str) -> float:
    """`options.downloads` downloads of `url`, each the first through the replica:
    its local copies removed before each, as a new replica's empty data directory
    (one connection each); MB/s overall.

    Raises:
        RuntimeError: a download failed, or left no copy behind.
    """
    seconds = 0.0
    for _ in range(options.downloads):
        shutil.rmtree(copies, ignore_errors=True)
        seconds += curl_seconds(options, url, size, 1)
        wait_for_copy(copies, name)
    return size * options.downloads / seconds / 1e6


def has_copy(copies: Path, name: str) -> bool:
    """A replica's local copy of the file `name` is in `copies` (its blob-copies/)."""
    return any(copies.rglob(name)) if copies.is_dir() else False


def wait_for_copy(copies: Path, name: str, timeout: float = 10.0) -> None:
    """Raises RuntimeError if the copy of `name` does not appear within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not has_copy(copies, name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no local copy of {name} in {copies}")
        time.sleep(0.01)


def importable_wheel(options: Options) -> Path:
    """The big wheel, as `packyard import` takes it. Imports follow the upload's
    rules, which refuse a local version as PyPI does (torch's `+cpu`): then a wheel
    of the same size, of incompressible bytes, stands in for it."""
    wheel = options.wheel
    if "+" not in wheel.name.split("-")[1]:
        return wheel
    folder = options.work / "stand-in"
    folder.mkdir()
    filler = hashlib.shake_256(b"replicas").digest(wheel.stat().st_size - 2048)
    stand_in = build_wheel(folder, "big-wheel", "1.0", extra_files={"big_wheel/data": filler})
    log(f"download: {wheel.name} has a local version; {stand_in.name} stands in for it")
    return stand_in


def phase_download(options: Options, stack: Backends, report: Report) -> None:
    wheel = importable_wheel(options)
    size = wheel.stat().st_size
    project = wheel.name.split("-")[0].lower().replace("_", "-")
    folder = options.work / "wheel"
    folder.mkdir()
    try:
        (folder / wheel.name).hardlink_to(wheel)
    except OSError:
        shutil.copyfile(wheel, folder / wheel.name)
    sites = {
        S3_WARM: stack.site("dl_s3", s3=True),
        "packyard filesystem": stack.site("dl_fs", s3=False),
    }
    for label, site in sites.items():
        # A public name: the name guard wants an administrator's leave to import it.
        site.command("name", "allow", project)
        started_at = time.perf_counter()
        site.command("import", str(folder))
        seconds = time.perf_counter() - started_at
        log(f"download: imported {wheel.name} into {label} in {seconds:.1f} s")
    weed = stack.seaweed._process
    with contextlib.ExitStack() as running:
        # name -> (CPU seconds of the process that serves it, one sample in MB/s)
        servers: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {}
        web, web_url, _ = running.enter_context(nginx(options, "nginx-files", folder))
        servers["nginx"] = (
            web.cpu_seconds,
            partial(curl_sample, options, f"{web_url}/{wheel.name}", size),
        )
        for label, site in sites.items():
            process, base = running.enter_context(replica(site, "r1", options.server_cpus))
            url = file_url(base, project, wheel.name)
            if label != S3_WARM:
                servers[label] = (process.cpu_seconds, partial(curl_sample, options, url, size))
                continue
            # The same replica: from its local copy, and first downloads through it.
            copies = site.data_dir("r1") / "blob-copies"
            sample: Callable[[], float] = partial(
                warm_copy_sample, options, url, size, copies, wheel.name
            )
            servers[S3_WARM] = (process.cpu_seconds, sample)
            sample = partial(first_download_sample, options, url, size, copies, wheel.name)
            servers[S3_FIRST] = (process.cpu_seconds, sample)
            # And a replica that keeps no copies: every download streamed from S3.
            streaming = replica(site, "r0", options.server_cpus, config=NO_COPIES)
            process, base = running.enter_context(streaming)
            url = file_url(base, project, wheel.name)
            servers[S3_STREAMED] = (process.cpu_seconds, partial(curl_sample, options, url, size))
        # The store's own ceiling here: the same object fetched from SeaweedFS directly.
        store, key = stored_object(stack.seaweed, sites[S3_WARM], size)
        direct = obstore.sign(store, "GET", key, timedelta(minutes=30))
        if not direct.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"refusing {direct}")
        servers["SeaweedFS direct (presigned GET)"] = (
            lambda: process_cpu(weed),
            partial(curl_sample, options, direct, size),
        )
        # And the read side of packyard's S3 path alone: obstore, no HTTP response.
        probe = partial(obstore_sample, options, sites[S3_WARM], stack.seaweed, key, size)
        servers["obstore read alone (no HTTP out)"] = (children_cpu, probe)
        samples: dict[str, list[float]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        weed_cpu: dict[str, list[float]] = {name: [] for name in servers}
        for _, warm in servers.values():
            warm()  # warm: page cache, connections, code paths
        for repeat in range(1, options.repeats + 1):
            for name, (cpu_seconds, sample) in servers.items():
                before, weed_before = cpu_seconds(), process_cpu(weed)
                started_at = time.perf_counter()
                samples[name].append(sample())
                wall = time.perf_counter() - started_at
                cpu[name].append((cpu_seconds() - before) / wall * 100)
                weed_cpu[name].append((process_cpu(weed) - weed_before) / wall * 100)
                log(f"download repeat {repeat} {name}: {samples[name][-1]:.0f} MB/s")
    fs = median(samples["packyard filesystem"])
    s3 = median(samples[S3_WARM])
    first = median(samples[S3_FIRST])
    lines = [
        f"`{wheel.name}` ({size:,} bytes); {options.downloads} downloads in a row on one curl "
        f"connection per sample, {options.repeats} samples each, interleaved. CPU: share of one "
        "core over the sample's wall time, median. S3 warm: from the replica's local copy "
        "(`[s3] local_copies_mb`, default); first download: the same replica with its copies "
        "removed before each download (a connection each), streamed from S3 while the copy is "
        "filled; copies off: a second replica with `local_copies_mb = 0`.",
        "",
        "| server | MB/s median | samples MB/s | server CPU % | SeaweedFS CPU % "
        "| vs filesystem | vs nginx |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name in servers:
        value = median(samples[name])
        each = " / ".join(f"{v:.0f}" for v in samples[name])
        lines.append(
            f"| {name} | {value:,.0f} | {each} | {median(cpu[name]):.0f} | "
            f"{median(weed_cpu[name]):.0f} | {value / fs:.0%} | "
            f"{value / median(samples['nginx']):.0%} |"
        )
    verdict = "met" if s3 >= 0.5 * fs else "NOT met"
    lines += [
        "",
        f"Target S3 (warm) ≥ 50% of filesystem: {s3 / fs:.0%}, **{verdict}**. "
        f"A first download through a replica: {first:,.0f} MB/s = {first / fs:.0%}.",
    ]
    report.add("Big-wheel download, warm", lines)
    report.summary.append(
        ("download S3 warm / filesystem", f"{s3:,.0f} / {fs:,.0f} MB/s = {s3 / fs:.0%} ({verdict})")
    )
    report.summary.append(
        ("download S3 first / filesystem", f"{first:,.0f} / {fs:,.0f} MB/s = {first / fs:.0%}")
    )


def stored_object(seaweed: SeaweedServer, site: Site, size: int) -> tuple[S3Store, str]:
    """The site's bucket, and the key of its one object of `size` bytes."""
    location = urlsplit(site.env["PACKYARD_STORAGE_URL"])
    store = S3Store(
        location.netloc,
        endpoint=seaweed.endpoint_url,
        region=site.env["AWS_REGION"],
        access_key_id=site.env["AWS_ACCESS_KEY_ID"],
        secret_access_key=site.env["AWS_SECRET_ACCESS_KEY"],
        client_options={"allow_http": True},
    )
    for batch in obstore.list(store, location.path.strip("/")):
        for meta in batch:
            if meta["size"] == size:
                return store, meta["path"]
    raise RuntimeError("the big wheel is not in the bucket")


# Run pinned like a replica: read the object `reads` times as packyard's S3 store does
# (obstore.get_async, 256 KiB chunks, storage/s3.py), dropping the bytes; print seconds each.
READ_PROBE = """
import asyncio, os, sys, time, obstore
from obstore.store import S3Store
bucket, key, endpoint, region, key_id, secret, reads = sys.argv[1:8]
store = S3Store(bucket, endpoint=endpoint, region=region, access_key_id=key_id,
                secret_access_key=secret, client_options={"allow_http": True})
async def main():
    for _ in range(int(reads)):
        started = time.perf_counter()
        result = await obstore.get_async(store, key)
        size = 0
        async for chunk in result.stream(min_chunk_size=256 * 1024):
            size += len(chunk)
        print(size, time.perf_counter() - started, flush=True)
asyncio.run(main())
os._exit(0)  # obstore's runtime may abort at interpreter teardown (SIGABRT seen here)
"""


def obstore_sample(
    options: Options, site: Site, seaweed: SeaweedServer, key: str, size: int
) -> float:
    """`options.downloads` reads of the object by obstore in a process on the server CPUs.

    Raises:
        RuntimeError: the probe failed or read the wrong size.
    """
    location = urlsplit(site.env["PACKYARD_STORAGE_URL"])
    argv = [sys.executable, "-c", READ_PROBE, location.netloc, key, seaweed.endpoint_url]
    argv += [site.env[name] for name in ("AWS_REGION", "AWS_ACCESS_KEY_ID")]
    argv += [site.env["AWS_SECRET_ACCESS_KEY"], str(options.downloads)]
    result = subprocess.run(
        pinned(options.server_cpus, argv), capture_output=True, text=True, timeout=600, check=False
    )
    rows = [line.split() for line in result.stdout.splitlines()]
    if result.returncode != 0 or any(int(row[0]) != size for row in rows):
        output = f"{result.stdout[-500:]}{result.stderr[-2000:]}"
        raise RuntimeError(f"obstore probe exited {result.returncode}: {output}")
    return size * len(rows) / sum(float(row[1]) for row in rows) / 1e6


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the probe's, around one sample)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(process: subprocess.Popen[bytes] | None) -> float:
    """CPU seconds of one process (all its threads)."""
    if process is None:
        return 0.0
    fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- phase 2: write on A, visible on B -------------------------------------------------


class KeepAlive:
    """One HTTP/1.1 connection to a replica, reopened if the server closed it."""

    def __init__(self, base: str) -> None:
        self.port = urlsplit(base).port
        self.connection = http.client.HTTPConnection(HOST, self.port, timeout=10)

    def request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def yanked_on(reader: KeepAlive, project: str, filename: str) -> bool:
    status, body = reader.request("GET", f"/simple/{project}/", {"Accept": JSON_ACCEPT})
    if status != 200:
        raise RuntimeError(f"B answered {status}")
    for entry in json.loads(body)["files"]:
        if entry["filename"] == filename:
            return bool(entry.get("yanked"))
    raise RuntimeError(f"{filename} missing on B")


def phase_freshness(options: Options, stack: Backends, report: Report) -> None:
    site = stack.site("fresh", s3=True)
    dists = options.work / "fresh-dists"
    dists.mkdir()
    wheel = build_wheel(dists, "fresh-probe", "1.0")
    site.command("import", str(dists))
    token = site.token()
    project, filename = "fresh-probe", wheel.name
    path = f"/api/v1/projects/{project}/releases/1.0/files/{filename}/yank"
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    delays: list[float] = []
    polls: list[int] = []
    steady: list[float] = []  # a poll of B while nothing changes: the floor of a delay
    missed = 0
    with (
        replica(site, "a", options.server_cpus, role="all") as (_, base_a),
        replica(site, "b", options.server_cpus, role="index") as (_, base_b),
    ):
        os.sched_setaffinity(0, {int(cpu) for cpu in options.client_cpus.split(",")})
        writer, reader = KeepAlive(base_a), KeepAlive(base_b)
        try:
            for index in range(options.writes):
                want = index % 2 == 0
                started_at = time.perf_counter()
                if yanked_on(reader, project, filename) == want:
                    raise RuntimeError("B shows the new state before the write")
                steady.append((time.perf_counter() - started_at) * 1000)
                status, body = writer.request("PUT" if want else "DELETE", path, auth)
                answered = time.perf_counter()
                if status != 200:
                    raise RuntimeError(f"A answered {status}: {body[:200]!r}")
                count = 0
                while True:
                    count += 1
                    if yanked_on(reader, project, filename) == want:
                        delays.append((time.perf_counter() - answered) * 1000)
                        polls.append(count)
                        break
                    if time.perf_counter() - answered > 5:
                        missed += 1
                        break
                    time.sleep(0.001)
                time.sleep(0.01)
        finally:
            writer.close()
            reader.close()
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
    verdict = "met" if p99 < 100 and not missed else "NOT met"
    lines = [
        f"{options.writes} file yanks toggled (PUT/DELETE …/files/{{filename}}/yank) on A "
        "(`--role all`); B (`--role index`) polled with `GET /simple/fresh-probe/` (JSON) "
        "every 1 ms on one keep-alive connection until it shows the new state.",
        "",
        "| writes | seen | p50 ms | p90 ms | p99 ms | max ms | min ms | polls p50 | polls max "
        "| unchanged poll p50 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {options.writes} | {len(delays)} | {p50:.2f} | {percentile(delays, 0.9):.2f} | "
        f"{p99:.2f} | {max(delays):.2f} | {min(delays):.2f} | {median(polls):.0f} | "
        f"{max(polls)} | {median(steady):.2f} |",
        "",
        f"Target p99 < 100 ms: **{verdict}**"
        + (f" ({missed} not seen within 5 s)" if missed else "")
        + ".",
    ]
    report.add("Write on A, visible on B", lines)
    report.summary.append(("A→B visible p50 / p99", f"{p50:.2f} / {p99:.2f} ms ({verdict})"))


# --- phase 3: one index replica against two --------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def start_wrk(options: Options, url: str, connections: int, paths: Path) -> subprocess.Popen[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{options.duration}s", "--timeout", "10s"]
    argv += ["-s", str(HARNESS / "rotate.lua"), url]
    env = clean_environment({"BENCH_PATHS": str(paths), "BENCH_MAX_REQUESTS": "2000000"})
    return subprocess.Popen(
        pinned(options.client_cpus, argv),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wrk_result(process: subprocess.Popen[str], timeout: float) -> WrkResult:
    output, _ = process.communicate(timeout=timeout)
    found = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    data = json.loads(found[1])
    errors = sum(data[key] for key in data if key.startswith("err_"))
    return WrkResult(
        data["requests"] / (data["duration_us"] / 1e6),
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        errors,
    )


def phase_pages(options: Options, stack: Backends, report: Report) -> None:
    site = stack.site("pages", s3=True)
    dists = options.work / "page-dists"
    dists.mkdir()
    projects = [f"bench-page-{index:03d}" for index in range(PAGE_PROJECTS)]
    for project in projects:
        for version in range(1, PAGE_VERSIONS + 1):
            build_wheel(dists, project, f"{version}.0", requires_dist=("attrs>=23",))
    site.command("import", str(dists))
    paths = options.work / "page-paths.txt"
    paths.write_text("".join(f"/simple/{project}/\n" for project in projects))
    one: list[WrkResult] = []
    two: list[tuple[WrkResult, WrkResult]] = []
    cpu_one: list[float] = []
    cpu_two: list[tuple[float, float]] = []
    half = options.connections // 2
    with (
        replica(site, "r1", options.server_cpus, role="index") as (first, base_1),
        replica(site, "r2", options.second_cpus, role="index") as (second, base_2),
    ):
        for base in (base_1, base_2):  # warm every page on both
            for project in projects:
                get_json(base, f"/simple/{project}/")
            wrk_result(start_wrk(options, base, half, paths), options.duration + 60)
        for repeat in range(1, options.repeats + 1):
            before = first.cpu_seconds()
            result = wrk_result(
                start_wrk(options, base_1, options.connections, paths), options.duration + 60
            )
            one.append(result)
            cpu_one.append((first.cpu_seconds() - before) / options.duration * 100)
            log(f"pages repeat {repeat} one replica: {result.requests_per_second:,.0f} req/s")
            befores = first.cpu_seconds(), second.cpu_seconds()
            runs = [start_wrk(options, base, half, paths) for base in (base_1, base_2)]
            pair = (
                wrk_result(runs[0], options.duration + 60),
                wrk_result(runs[1], options.duration + 60),
            )
            two.append(pair)
            cpu_two.append(
                (
                    (first.cpu_seconds() - befores[0]) / options.duration * 100,
                    (second.cpu_seconds() - befores[1]) / options.duration * 100,
                )
            )
            total = pair[0].requests_per_second + pair[1].requests_per_second
            log(f"pages repeat {repeat} two replicas: {total:,.0f} req/s")
    one_rps = median([r.requests_per_second for r in one])
    each_one = " / ".join(f"{r.requests_per_second:,.0f}" for r in one)
    each_two = " / ".join(
        f"{a.requests_per_second:,.0f}+{b.requests_per_second:,.0f}" for a, b in two
    )
    two_rps = median([a.requests_per_second + b.requests_per_second for a, b in two])
    lines = [
        f"{PAGE_PROJECTS} in-house projects × {PAGE_VERSIONS} wheels (PostgreSQL + S3), "
        f"`GET /simple/<project>/` (HTML) rotated, wrk -t1 {options.duration} s, "
        f"{options.repeats} repeats interleaved. One: one wrk at c{options.connections} against "
        f"replica 1 (CPU {options.server_cpus}). Two: two wrk at c{half} each, one per replica, "
        f"at once (replica 1 on CPU {options.server_cpus}, replica 2 on CPU "
        f"{options.second_cpus}; wrk on CPU {options.client_cpus}), summed; no load balancer.",
        "",
        "| setup | req/s median | per repeat | p50 ms | p99 ms | errors | replica CPU % |",
        "|---|---:|---|---:|---:|---:|---|",
        f"| one replica | {one_rps:,.0f} | {each_one} | "
        f"{median([r.p50_ms for r in one]):.2f} | {median([r.p99_ms for r in one]):.2f} | "
        f"{sum(r.errors for r in one)} | {median(cpu_one):.0f} |",
        f"| two replicas | {two_rps:,.0f} | "
        f"{each_two} | "
        f"{median([max(a.p50_ms, b.p50_ms) for a, b in two]):.2f} | "
        f"{median([max(a.p99_ms, b.p99_ms) for a, b in two]):.2f} | "
        f"{sum(a.errors + b.errors for a, b in two)} | "
        f"{median([c[0] for c in cpu_two]):.0f} + {median([c[1] for c in cpu_two]):.0f} |",
        "",
        f"Two / one: **{two_rps / one_rps:.2f}×** (p50/p99 of two: the worse of the two wrk runs).",
    ]
    report.add("Warm in-house pages: one index replica against two", lines)
    report.summary.append(
        (
            "pages one / two replicas",
            f"{one_rps:,.0f} / {two_rps:,.0f} req/s = {two_rps / one_rps:.2f}×",
        )
    )


# --- phase 4: cold resolve through two replicas sharing S3 ------------------------------


@dataclass(frozen=True)
class Step:
    ok: bool
    seconds: float
    upstream_bytes: int
    upstream_requests: int
    detail: str


def client_argv(options: Options, tool: str, index_url: str) -> list[str]:
    client = options.venvs / "client/bin"
    requirements = ["--index-url", index_url, "-r", str(options.requirements)]
    if tool == "pip":
        argv = [str(client / "python"), "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        return [*argv, "--no-cache-dir", *requirements]
    argv = [str(client / "uv"), "pip", "install", "--dry-run", "--no-cache"]
    return [*argv, "--python", str(options.venvs / "target/bin/python"), *requirements]


def run_client(options: Options, tool: str, index_url: str) -> tuple[bool, float, str]:
    home = Path(tempfile.mkdtemp(prefix=f"client-{tool}-", dir=options.work))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": str(home / "uv-cache"),
        "NO_PROXY": "*",
        "LC_ALL": "C.UTF-8",
    }
    started_at = time.perf_counter()
    try:
        result = subprocess.run(
            pinned(options.client_cpus, client_argv(options, tool, index_url)),
            env=env,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.perf_counter() - started_at
    output = result.stdout + result.stderr
    said = re.search(r"^Would install (.*)$", output, re.MULTILINE)
    if result.returncode == 0 and said:
        return True, seconds, f"{len(said[1].split())} packages"
    return False, seconds, (output.strip().splitlines() or [f"exit {result.returncode}"])[-1][:200]


def settled_size(access_log: Path, quiet: float = 1.5, limit: float = 60.0) -> int:
    """The access log's size once it has not grown for `quiet` seconds (read-ahead done)."""
    deadline = time.monotonic() + limit
    size, since = access_log.stat().st_size, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = access_log.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return size


def counted(access_log: Path, start: int, end: int) -> tuple[int, int]:
    """(bytes sent, requests) in the access log between two offsets."""
    with access_log.open("rb") as handle:
        handle.seek(start)
        lines = handle.read(end - start).decode().splitlines()
    return sum(int(line.split()[1]) for line in lines), len(lines)


def cold_step(options: Options, tool: str, base: str, access_log: Path) -> Step:
    start = settled_size(access_log)
    ok, seconds, detail = run_client(options, tool, f"{base}/simple/")
    sent, requests = counted(access_log, start, settled_size(access_log))
    return Step(ok, seconds, sent, requests, detail)


def cold_pair(
    options: Options, site: Site, setup: str, tool: str, upstream: str, access_log: Path
) -> tuple[Step, Step]:
    """A client run through replica 1, then one through replica 2 (or 1 again, for "one")."""
    with contextlib.ExitStack() as servers:
        bases = []
        for name in ("r1", "r2") if setup == SETUPS[1] else ("r1",):
            server = replica(
                site, name, options.server_cpus, role="index", upstream=f"{upstream}/simple/"
            )
            bases.append(servers.enter_context(server)[1])
        first = cold_step(options, tool, bases[0], access_log)
        return first, cold_step(options, tool, bases[-1], access_log)


def phase_cold(options: Options, stack: Backends, report: Report) -> None:
    results: dict[str, list[tuple[Step, Step]]] = {}
    with nginx(options, "nginx-upstream", options.www) as (_, upstream, access_log):
        run = 0
        for repeat in range(1, options.cold_repeats + 1):
            for tool in TOOLS:
                for setup in SETUPS:
                    run += 1
                    site = stack.site(f"cold_{run}", s3=True)
                    first, second = cold_pair(options, site, setup, tool, upstream, access_log)
                    results.setdefault(f"{tool}/{setup}", []).append((first, second))
                    state = "ok" if first.ok and second.ok else "FAILED"
                    log(
                        f"cold repeat {repeat} {tool} {setup}: {first.seconds:.2f} s "
                        f"{first.upstream_bytes:,} B, then {second.seconds:.2f} s "
                        f"{second.upstream_bytes:,} B ({state})"
                    )
    lines = [
        f"`{options.requirements.name}` of the shared harness, `--dry-run`, no client cache; "
        f"upstream nginx over `{options.www}`; a fresh PostgreSQL database and bucket, and fresh "
        f"data directories, for every row; {options.cold_repeats} repeats, median. Bytes: "
        "nginx's `$bytes_sent` (headers included) from the first request until its log stood "
        "still for 1.5 s after the client ended (the dependency read-ahead included).",
        "",
        "| client | setup | 1st s | 2nd s | 1st upstream bytes | 2nd upstream bytes "
        "| total bytes | requests 1st+2nd | ok |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    totals: dict[str, float] = {}
    for key, pairs in results.items():
        tool, setup = key.split("/")
        total = median([a.upstream_bytes + b.upstream_bytes for a, b in pairs])
        totals[key] = total
        oks = sum(a.ok and b.ok for a, b in pairs)
        lines.append(
            f"| {tool} | {setup} | {median([a.seconds for a, _ in pairs]):.2f} | "
            f"{median([b.seconds for _, b in pairs]):.2f} | "
            f"{median([a.upstream_bytes for a, _ in pairs]):,.0f} | "
            f"{median([b.upstream_bytes for _, b in pairs]):,.0f} | {total:,.0f} | "
            f"{median([a.upstream_requests for a, _ in pairs]):.0f}+"
            f"{median([b.upstream_requests for _, b in pairs]):.0f} | {oks}/{len(pairs)} |"
        )
    failures = [
        f"- {key}: {s.detail}"
        for key, pairs in results.items()
        for pair in pairs
        for s in pair
        if not s.ok
    ]
    lines += ["", *failures, ""] if failures else [""]
    verdicts = []
    for tool in TOOLS:
        two, one = totals[f"{tool}/two replicas"], totals[f"{tool}/one replica twice"]
        verdicts.append(f"{tool} {two / one:.3f}×")
        lines.append(
            f"- {tool}: upstream bytes, two replicas / one replica = {two:,.0f} / {one:,.0f} "
            f"= **{two / one:.3f}×**."
        )
    report.add("Cold resolve through two replicas sharing S3 against one", lines)
    report.summary.append(("cold upstream bytes two / one", ", ".join(verdicts)))


# --- the run ---------------------------------------------------------------------------


def largest_wheel() -> Path:
    folders = os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()
    wheels = [path for folder in folders for path in Path(folder).glob("*.whl")]
    if not wheels:
        raise SystemExit(f"no wheel in {folders}: pass --wheel")
    return max(wheels, key=lambda path: path.stat().st_size)


def default_www() -> Path:
    """The first `file://…/simple` mirror in pip's configuration (the harness's `<mirror>`)."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    for found in re.findall(r"file://(/[^'\s]*?)/simple/?", listing):
        if Path(found, "simple").is_dir():
            return Path(found)
    raise SystemExit(
        "no local mirror in pip's configuration: pass --www (the folder that holds simple/)"
    )


def snapshot(work: Path, tree: str) -> tuple[Path, str]:
    """The `src` folder packyard runs from, and what it is.

    Others edit this checkout while the run goes on: by default packyard runs
    from a copy of HEAD's `src` taken at start, so the whole run measures one commit.
    """
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    if tree == "working":
        return REPO / "src", f"working tree on {commit}"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", "src"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, timeout=60, check=True)
    return work / "src", f"commit {commit}"


def parse_args() -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {PHASES}")
    parser.add_argument("--wheel", type=Path, help="the big wheel (default: largest in find-links)")
    parser.add_argument("--www", type=Path, help="the upstream's folder that holds simple/")
    parser.add_argument("--requirements", type=Path, default=HARNESS / "requirements.txt")
    venvs = os.environ.get("BENCH_VENVS") or str(TEMP / "bench-venvs")
    parser.add_argument("--venvs", type=Path, default=Path(venvs))
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--second-cpus", default="1", help="the second index replica of `pages`")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--backend-cpus", default="1", help="PostgreSQL and SeaweedFS")
    parser.add_argument("--repeats", type=int, default=5, help="download samples and page runs")
    parser.add_argument("--downloads", type=int, default=5, help="downloads per sample")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument(
        "--tree",
        choices=("head", "working"),
        default="head",
        help="measure the committed HEAD (a snapshot taken at start) or the working tree",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench/replicas-run.md")
    args = parser.parse_args()
    phases = tuple(phase.strip() for phase in args.phases.split(",") if phase.strip())
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="packyard-replicas-"))
    work.chmod(0o755)  # nginx's worker runs as nobody
    source, commit = snapshot(work, args.tree)
    options = Options(
        phases=phases,
        work=work,
        source=source,
        commit=commit,
        wheel=(args.wheel or largest_wheel()).resolve(),
        www=(args.www or default_www()).resolve(),
        requirements=args.requirements.resolve(),
        venvs=args.venvs,
        server_cpus=args.server_cpus,
        second_cpus=args.second_cpus,
        client_cpus=args.client_cpus,
        backend_cpus=args.backend_cpus,
        repeats=args.repeats,
        downloads=args.downloads,
        writes=args.writes,
        duration=args.duration,
        connections=args.connections,
        cold_repeats=args.cold_repeats,
    )
    return options, args.out


def header(options: Options) -> list[str]:
    uname = os.uname()
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return [
        "# Scale-out benchmark: replicas on PostgreSQL and S3 (raw report)",
        "",
        f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} CPUs, "
        f"{memory:.1f} GiB, {uname.sysname} {uname.release}, Python {sys.version.split()[0]}; "
        "shared with other engineers' test runs (compare within this run only).",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/replicas.py', *sys.argv[1:]])}`.",
        f"packyard: {options.commit}. CPUs: packyard and nginx {options.server_cpus}, "
        "second index replica "
        f"{options.second_cpus}, clients/load {options.client_cpus}, PostgreSQL and SeaweedFS "
        f"{options.backend_cpus}.",
        "",
    ]


def main() -> None:
    options, out = parse_args()
    for folder in ("state", "logs"):
        (options.work / folder).mkdir()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    log(f"work and logs in {options.work}")
    report = Report()
    phases = {
        "download": phase_download,
        "freshness": phase_freshness,
        "pages": phase_pages,
        "cold": phase_cold,
    }
    try:
        with backends(options) as stack:
            for name in options.phases:
                log(f"phase {name}")
                phases[name](options, stack, report)
    finally:
        shutil.rmtree(options.work / "state", ignore_errors=True)
    summary = ["| measure | result |", "|---|---|", *(f"| {k} | {v} |" for k, v in report.summary)]
    text = "\n".join([*header(options), "## Summary", "", *summary, "", *report.sections])
    out.write_text(text)
    log(f"report written to {out}")


if __name__ == "__main__":
    main()
