"""Hardening: the hot path before and after (issue "Hardening").

"The hardening must not cost the hot path: warm page throughput and big-file
download throughput before and after, side by side in one run (target: within
5%)."

Two packyards, each run from its own copy of the source (`git archive COMMIT
src`, taken at start): "before" = `--before` (7b1bccd, the last commit before
the hardening work), "after" = `--after` (HEAD when the run starts). Both on the
embedded defaults (SQLite, filesystem), `--upstream none`, each with its own
data directory holding the same in-house projects: the shared harness's 200
projects (`projects.txt`, files from its local mirror) and the largest wheel of
pip's find-links (torch, ~192 MB), all added with `packyard import`; without
configparser, a standard-library name that the name guard of "after" refuses.

Measured, interleaved per repeat (before/after, then after/before in the next
repeat, so that neither always goes first), packyard on `--server-cpus`, wrk
and curl on `--client-cpus`:

- `open` mode (the default configuration):
  - warm project pages, HTML and JSON (PEP 691): `wrk -t1 -c16 -d10s` rotating
    over the 201 `/simple/<project>/` pages with the harness's `rotate.lua`;
    req/s, p50, p99, server CPU;
  - warm big-wheel download: `--downloads` curl downloads in a row on one
    connection per sample (replicas.curl_sample); MB/s.
- `auth` mode: the same page runs with `[auth] read_requires_auth = true` and an
  API token sent by wrk as pip sends a token in the index URL (`Authorization:
  Basic base64(__token__:TOKEN)`), on both versions: the read guard is on the
  hot path only then.

    .venv/bin/python bench/hardening.py                 # ~12 minutes
    .venv/bin/python bench/hardening.py --repeats 3 --modes open

Writes a Markdown report (`--out`, default bench/hardening-run.md) and prints it.
Everything listens on and talks to 127.0.0.1 only; every process started here
is ended by its own process group (replicas.Process).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from replicas import (
    HARNESS,
    HOST,
    JSON_ACCEPT,
    PACKYARD,
    REPO,
    Options,
    Process,
    WrkResult,
    clean_environment,
    curl_sample,
    default_www,
    largest_wheel,
    log,
    median,
    pinned,
    serving,
    wrk_result,
)

VERSIONS = ("before", "after")
MODES = ("open", "auth")
ACCEPTS = {"HTML": "text/html", "JSON": JSON_ACCEPT}
COMMAND_TIMEOUT = 900.0
TARGET = 0.05
READER = "bench-reader"
# Standard-library names: the name guard (after) refuses them as in-house projects, with
# no administrator's leave possible, so neither version gets them.
STDLIB_NAMES = ("configparser",)
AUTH_CONFIG = "[auth]\nread_requires_auth = true\n"

# rotate.lua with an Authorization header on every request: wrk.format is wrapped
# before the harness's script builds its requests with it.
AUTH_LUA = """local authorization = assert(os.getenv("BENCH_AUTHORIZATION"), "no authorization")
local format = wrk.format
wrk.format = function(method, path, headers, body)
  headers = headers or {{}}
  headers["Authorization"] = authorization
  return format(method, path, headers, body)
end
dofile("{rotate}")
"""


@dataclass(frozen=True)
class Settings:
    work: Path
    before: str
    after: str
    www: Path
    wheel: Path
    projects_file: Path
    modes: tuple[str, ...]
    server_cpus: str
    client_cpus: str
    repeats: int
    duration: int
    connections: int
    downloads: int

    def replicas_options(self) -> Options:
        """The options replicas.curl_sample reads (downloads, client CPUs)."""
        return Options(
            phases=(),
            work=self.work,
            source=self.work,
            commit="",
            wheel=self.wheel,
            www=self.www,
            requirements=HARNESS / "requirements.txt",
            venvs=self.work,
            server_cpus=self.server_cpus,
            second_cpus=self.client_cpus,
            client_cpus=self.client_cpus,
            backend_cpus=self.client_cpus,
            repeats=self.repeats,
            downloads=self.downloads,
            writes=0,
            duration=self.duration,
            connections=self.connections,
            cold_repeats=0,
        )


@dataclass(frozen=True)
class Version:
    """One packyard: its source copy, its data directory and a reader's token."""

    label: str
    commit: str
    source: Path
    data: Path
    token: str
    import_seconds: float

    def env(self) -> dict[str, str]:
        return clean_environment({"PYTHONPATH": str(self.source)})


@dataclass
class Sample:
    result: WrkResult
    cpu_percent: float


@dataclass
class Results:
    # (mode, accept, version) -> page samples; version -> download MB/s
    pages: dict[tuple[str, str, str], list[Sample]] = field(default_factory=dict)
    downloads: dict[str, list[float]] = field(default_factory=dict)
    download_cpu: dict[str, list[float]] = field(default_factory=dict)
    page_bytes: dict[tuple[str, str], float] = field(default_factory=dict)
    projects: int = 0


# --- content and versions ---------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def source_copy(work: Path, label: str, commit: str) -> Path:
    """`src` of `commit`, extracted under `work/label` (the checkout is edited meanwhile)."""
    target = work / label
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, timeout=60, check=True)
    return target / "src"


def link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def build_tree(settings: Settings) -> dict[str, set[str]]:
    """`work/tree/<project>/<file>` as the harness builds its `{dir}`: every file the
    mirror's page of each project of projects.txt links, and the big wheel as its
    own project; not the standard-library names of `STDLIB_NAMES`. Returns project ->
    file names."""
    tree = settings.work / "tree"
    simple = settings.www / "simple"
    expected: dict[str, set[str]] = {}
    for line in settings.projects_file.read_text().splitlines():
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        project = re.sub(r"[-_.]+", "-", name).lower()
        if project in STDLIB_NAMES:
            continue
        page = (simple / project / "index.html").read_text(encoding="utf-8")
        (tree / project).mkdir(parents=True)
        files = set()
        for href in re.findall(r'href="([^"#]+)', page):
            source = Path(os.path.normpath(simple / project / href))
            link_or_copy(source, tree / project / source.name)
            files.add(source.name)
        expected[project] = files
    big = big_project(settings.wheel)
    (tree / big).mkdir()
    link_or_copy(settings.wheel, tree / big / settings.wheel.name)
    expected[big] = {settings.wheel.name}
    return expected


def big_project(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-")


def packyard(
    source: Path, data: Path, *args: str, stdin: str | None = None, check: bool = True
) -> str:
    """`packyard ARGS --data-dir DATA` run from `source`; its stdout.

    Raises:
        RuntimeError: it failed (its output is in the message), unless not `check`.
    """
    argv = [*PACKYARD, *args, "--data-dir", str(data)]
    result = subprocess.run(
        argv,
        env=clean_environment({"PYTHONPATH": str(source)}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}:\n{output}")
    return result.stdout


def prepare(settings: Settings, label: str, commit: str) -> Version:
    """A source copy of `commit`, a data directory with the tree imported, a reader's token."""
    source = source_copy(settings.work, label, commit)
    data = settings.work / "state" / f"{label}-data"
    data.mkdir(parents=True)
    if "Create a new, empty store" in packyard(source, data, "init", "--help", check=False):
        packyard(source, data, "init")  # commands but serve refuse to create a store
    # A public name: the name guard (after) wants an administrator's leave to import
    # it; given on both so both hold the same rows.
    packyard(source, data, "name", "allow", big_project(settings.wheel))
    import_args = ["import", str(settings.work / "tree")]
    if "--upstream" in packyard(source, data, "import", "--help"):
        import_args += ["--upstream", "none"]  # no upstream to take public names from
    started_at = time.perf_counter()
    packyard(source, data, *import_args)
    seconds = time.perf_counter() - started_at
    packyard(source, data, "user", "add", READER)
    token = packyard(source, data, "token", "create", READER).strip().splitlines()[-1]
    log(f"{label} ({commit}): imported the tree in {seconds:.1f} s")
    return Version(label, commit, source, data, token, seconds)


@contextlib.contextmanager
def server(
    settings: Settings, version: Version, mode: str
) -> Iterator[tuple[Process, str, dict[str, str]]]:
    """`packyard serve` of `version` in `mode`, ready; (process, base URL, auth headers)."""
    config_args: list[str] = []
    if mode == "auth":
        config = settings.work / "state" / f"{version.label}-{mode}.toml"
        config.write_text(AUTH_CONFIG)
        config_args = ["--config", str(config)]
    log_path = settings.work / "logs" / f"{version.label}-{mode}.log"
    headers = {"Authorization": basic(version.token)} if mode == "auth" else {}

    def make(port: int) -> Process:
        argv = [*PACKYARD, "serve", "--data-dir", str(version.data), *config_args]
        argv += ["--host", HOST, "--port", str(port), "--upstream", "none"]
        return Process(pinned(settings.server_cpus, argv), version.env(), log_path)

    with serving(make, "/healthz") as (process, base):
        yield process, base, headers


def basic(token: str) -> str:
    """What pip sends for `http://__token__:TOKEN@host/simple/`."""
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


# --- checks and warm-up -----------------------------------------------------------------


def get(base: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, urlsplit(base).port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_pages(
    base: str, headers: dict[str, str], expected: dict[str, set[str]], mode: str
) -> dict[str, float]:
    """Every page answers 200 in HTML and JSON and lists the expected files; in `auth`
    mode, a page without credentials is 401. Returns the mean body size per format.

    Raises:
        RuntimeError: a page is wrong.
    """
    sizes: dict[str, list[int]] = {name: [] for name in ACCEPTS}
    for project, files in expected.items():
        for name, accept in ACCEPTS.items():
            status, body = get(base, f"/simple/{project}/", {**headers, "Accept": accept})
            if status != 200:
                raise RuntimeError(f"{base}/simple/{project}/ ({name}): {status} {body[:200]!r}")
            sizes[name].append(len(body))
            if name == "JSON":
                listed = {entry["filename"] for entry in json.loads(body)["files"]}
                if listed != files:
                    raise RuntimeError(f"{base}/simple/{project}/ lists {sorted(listed ^ files)}")
    if mode == "auth":
        status, _ = get(base, f"/simple/{next(iter(expected))}/", {})
        if status != 401:
            raise RuntimeError(f"{base}: a page without credentials answered {status}, not 401")
    return {name: sum(values) / len(values) for name, values in sizes.items()}


def big_file_url(base: str, project: str, filename: str) -> str:
    status, body = get(base, f"/simple/{project}/", {"Accept": JSON_ACCEPT})
    if status != 200:
        raise RuntimeError(f"{base}/simple/{project}/: {status}")
    for entry in json.loads(body)["files"]:
        if entry["filename"] == filename:
            return urljoin(f"{base}/simple/{project}/", str(entry["url"]))
    raise RuntimeError(f"{filename} is not on {base}/simple/{project}/")


# --- load -------------------------------------------------------------------------------


def run_wrk(
    settings: Settings, base: str, accept: str, authorization: str | None, duration: int
) -> WrkResult:
    """wrk -t1 rotating over every project page, as the harness runs it (rotate.lua)."""
    script = HARNESS / "rotate.lua"
    extra = {
        "BENCH_PATHS": str(settings.work / "paths.txt"),
        "BENCH_MAX_REQUESTS": "2000000",
        "BENCH_ACCEPT": accept,
    }
    if authorization is not None:
        script = settings.work / "rotate-auth.lua"
        extra["BENCH_AUTHORIZATION"] = authorization
    argv = ["wrk", "-t1", f"-c{settings.connections}", f"-d{duration}s", "--timeout", "10s"]
    argv += ["-s", str(script), base]
    process = subprocess.Popen(
        pinned(settings.client_cpus, argv),
        env=clean_environment(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return wrk_result(process, duration + 60)


def measure_mode(
    settings: Settings,
    mode: str,
    versions: dict[str, Version],
    expected: dict[str, set[str]],
    results: Results,
) -> None:
    options = settings.replicas_options()
    big = big_project(settings.wheel)
    size = settings.wheel.stat().st_size
    with contextlib.ExitStack() as stack:
        running: dict[str, tuple[Process, str, dict[str, str]]] = {}
        urls: dict[str, str] = {}
        for label, version in versions.items():
            running[label] = stack.enter_context(server(settings, version, mode))
            process, base, headers = running[label]
            sizes = check_pages(base, headers, expected, mode)
            for name, mean in sizes.items():
                results.page_bytes[(f"{mode} {name}", label)] = mean
            authorization = headers.get("Authorization")
            for accept in ACCEPTS.values():  # warm: code paths, caches, connections
                run_wrk(settings, base, accept, authorization, 3)
            if mode == "open":
                urls[label] = big_file_url(base, big, settings.wheel.name)
                curl_sample(options, urls[label], size)
            log(f"{mode}: {label} ready and warm at {base}")
        for repeat in range(1, settings.repeats + 1):
            order = VERSIONS if repeat % 2 else VERSIONS[::-1]
            for name, accept in ACCEPTS.items():
                for label in order:
                    process, base, headers = running[label]
                    before = process.cpu_seconds()
                    started_at = time.perf_counter()
                    result = run_wrk(
                        settings, base, accept, headers.get("Authorization"), settings.duration
                    )
                    wall = time.perf_counter() - started_at
                    cpu = (process.cpu_seconds() - before) / wall * 100
                    key = (mode, name, label)
                    results.pages.setdefault(key, []).append(Sample(result, cpu))
                    log(
                        f"repeat {repeat} {mode} {name} {label}: "
                        f"{result.requests_per_second:,.0f} req/s, p99 {result.p99_ms:.2f} ms, "
                        f"CPU {cpu:.0f}%, errors {result.errors}"
                    )
            if mode != "open":
                continue
            for label in order:
                process = running[label][0]
                before = process.cpu_seconds()
                started_at = time.perf_counter()
                value = curl_sample(options, urls[label], size)
                wall = time.perf_counter() - started_at
                results.downloads.setdefault(label, []).append(value)
                results.download_cpu.setdefault(label, []).append(
                    (process.cpu_seconds() - before) / wall * 100
                )
                log(f"repeat {repeat} download {label}: {value:,.0f} MB/s")


# --- the report -------------------------------------------------------------------------


def verdict(ratio: float, higher_is_better: bool = True) -> str:
    change = ratio - 1 if higher_is_better else 1 - ratio
    return "met" if change >= -TARGET else "**NOT met**"


def report(
    settings: Settings, versions: dict[str, Version], results: Results, started: datetime
) -> str:
    uname = os.uname()
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    command = shlex.join([".venv/bin/python", "bench/hardening.py", *sys.argv[1:]])
    before, after = versions["before"], versions["after"]
    projects = results.projects
    lines = [
        "# Hardening: the hot path before and after (raw report)",
        "",
        f"Date {started:%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} CPUs, {memory:.1f} GiB, "
        f"{uname.sysname} {uname.release}, Python {sys.version.split()[0]}; shared with other "
        "engineers' test runs (compare within this run only).",
        f"Command: `{command}`.",
        f"before: {before.commit}; after: {after.commit} (each from `git archive COMMIT src`). "
        f"CPUs: packyard {settings.server_cpus}, wrk and curl {settings.client_cpus}. "
        f"Embedded defaults (SQLite, filesystem), `--upstream none`; {projects} in-house "
        f"projects imported into each (the harness's projects.txt from `{settings.www}`, and "
        f"`{settings.wheel.name}`, {settings.wheel.stat().st_size:,} bytes). Import took "
        f"{before.import_seconds:.0f} s (before) and {after.import_seconds:.0f} s (after).",
        f"Pages: wrk -t1 -c{settings.connections} -d{settings.duration}s rotating over the "
        f"{projects} `/simple/<project>/` pages (the harness's rotate.lua). Download: "
        f"{settings.downloads} curl downloads in a row on one connection per sample. "
        f"{settings.repeats} repeats, interleaved (before then after in odd repeats, after then "
        "before in even ones). Figures are medians; ratios are after / before.",
        "",
        "| measure | before | after | after / before | per repeat before | per repeat after "
        "| target (within 5%) |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for mode in settings.modes:
        for name in ACCEPTS:
            samples = {label: results.pages.get((mode, name, label), []) for label in VERSIONS}
            if not all(samples.values()):
                continue
            rps = {v: median([s.result.requests_per_second for s in samples[v]]) for v in VERSIONS}
            p50 = {v: median([s.result.p50_ms for s in samples[v]]) for v in VERSIONS}
            p99 = {v: median([s.result.p99_ms for s in samples[v]]) for v in VERSIONS}
            cpu = {v: median([s.cpu_percent for s in samples[v]]) for v in VERSIONS}
            errors = {v: sum(s.result.errors for s in samples[v]) for v in VERSIONS}
            each = {
                v: " / ".join(f"{s.result.requests_per_second:,.0f}" for s in samples[v])
                for v in VERSIONS
            }
            each99 = {v: " / ".join(f"{s.result.p99_ms:.2f}" for s in samples[v]) for v in VERSIONS}
            ratio = rps["after"] / rps["before"]
            ratio99 = p99["after"] / p99["before"]
            lines.append(
                f"| {mode} pages {name} req/s | {rps['before']:,.0f} | {rps['after']:,.0f} | "
                f"{ratio:.3f} | {each['before']} | {each['after']} | {verdict(ratio)} |"
            )
            lines.append(
                f"| {mode} pages {name} p99 ms | {p99['before']:.2f} | {p99['after']:.2f} | "
                f"{ratio99:.3f} | {each99['before']} | {each99['after']} | "
                f"{verdict(ratio99, higher_is_better=False)} |"
            )
            lines.append(
                f"| {mode} pages {name} p50 ms | {p50['before']:.2f} | {p50['after']:.2f} | "
                f"{p50['after'] / p50['before']:.3f} | | | |"
            )
            lines.append(
                f"| {mode} pages {name} server CPU % | {cpu['before']:.0f} | {cpu['after']:.0f} "
                f"| | | | errors {errors['before']} / {errors['after']} |"
            )
            size_key = f"{mode} {name}"
            if (size_key, "before") in results.page_bytes:
                lines.append(
                    f"| {mode} pages {name} mean body bytes | "
                    f"{results.page_bytes[(size_key, 'before')]:,.0f} | "
                    f"{results.page_bytes[(size_key, 'after')]:,.0f} | | | | |"
                )
    if all(results.downloads.get(v) for v in VERSIONS):
        mbs = {v: median(results.downloads[v]) for v in VERSIONS}
        cpu = {v: median(results.download_cpu[v]) for v in VERSIONS}
        each = {v: " / ".join(f"{x:,.0f}" for x in results.downloads[v]) for v in VERSIONS}
        ratio = mbs["after"] / mbs["before"]
        lines.append(
            f"| big-wheel download MB/s | {mbs['before']:,.0f} | {mbs['after']:,.0f} | "
            f"{ratio:.3f} | {each['before']} | {each['after']} | {verdict(ratio)} |"
        )
        lines.append(
            f"| big-wheel download server CPU % | {cpu['before']:.0f} | {cpu['after']:.0f} "
            "| | | | |"
        )
    lines.append("")
    return "\n".join(lines)


# --- the run ----------------------------------------------------------------------------


def parse_args() -> tuple[Settings, Path]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default="7b1bccd", help="commit before the hardening")
    parser.add_argument("--after", default="HEAD", help="commit after it (resolved at start)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    parser.add_argument("--www", type=Path, help="the mirror's folder that holds simple/")
    parser.add_argument("--wheel", type=Path, help="the big wheel (default: largest in find-links)")
    parser.add_argument("--projects", type=Path, default=HARNESS / "projects.txt")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--downloads", type=int, default=5, help="downloads per sample")
    parser.add_argument("--out", type=Path, default=REPO / "bench/hardening-run.md")
    args = parser.parse_args()
    modes = tuple(mode.strip() for mode in args.modes.split(",") if mode.strip())
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="packyard-hardening-"))
    settings = Settings(
        work=work,
        before=git("rev-parse", "--short", args.before),
        after=git("rev-parse", "--short", args.after),
        www=(args.www or default_www()).resolve(),
        wheel=(args.wheel or largest_wheel()).resolve(),
        projects_file=args.projects.resolve(),
        modes=modes,
        server_cpus=args.server_cpus,
        client_cpus=args.client_cpus,
        repeats=args.repeats,
        duration=args.duration,
        connections=args.connections,
        downloads=args.downloads,
    )
    return settings, args.out


def main() -> None:
    settings, out = parse_args()
    started = datetime.now(UTC)
    for folder in ("state", "logs"):
        (settings.work / folder).mkdir()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    log(f"work and logs in {settings.work}; before {settings.before}, after {settings.after}")
    try:
        expected = build_tree(settings)
        (settings.work / "paths.txt").write_text(
            "".join(f"/simple/{project}/\n" for project in expected)
        )
        (settings.work / "rotate-auth.lua").write_text(
            AUTH_LUA.format(rotate=HARNESS / "rotate.lua")
        )
        versions = {
            "before": prepare(settings, "before", settings.before),
            "after": prepare(settings, "after", settings.after),
        }
        results = Results(projects=len(expected))
        for mode in settings.modes:
            log(f"mode {mode}")
            measure_mode(settings, mode, versions, expected, results)
    finally:
        shutil.rmtree(settings.work / "state", ignore_errors=True)
        shutil.rmtree(settings.work / "tree", ignore_errors=True)
    text = report(settings, versions, results, started)
    out.write_text(text)
    print(text, flush=True)
    log(f"report written to {out}")


if __name__ == "__main__":
    main()
