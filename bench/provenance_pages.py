"""Warm `/simple/<project>/` throughput with and without provenance (issue 13).

A file with PEP 740 provenance adds a `provenance` URL to its JSON entry and a
`data-provenance` attribute to its HTML anchor; nothing else on the warm path
changes (the summary is read with the file's row, the page is rendered once per
serial). Expected: no change within noise. This measures it against a real
`packyard serve` (SQLite, filesystem, `--upstream none`) holding two in-house
projects of the same shape, `--files` wheels each: `attested-lib`, every file with
provenance, and `plain-lib`, none.

The provenance is written straight into the rows of the imported store
(`files.provenance`, `files.provenance_publisher`): an upload with attestations
must authenticate with a CI job's ID token, which this bench cannot sign for the
real test vectors' jobs. The values written are the real ones: the provenance
object and summary that `AttestationVerifier` makes from
`tests/data/attestations/pypi_attestations-0.0.19.tar.gz` and its publish + SLSA
attestations (they name that sdist, not the rows' wheels; pages only link
`/integrity/…/provenance`, they do not read it).

nginx serves the same rendered bytes (fetched from the server once warm) as static
files in the same run, as the index pages' benchmark compares with it.

Load: wrk -t1 -c`--connections` for `--duration` s on one page, with the
harness's `rotate.lua` (`../shared/bench`), for each page (JSON as pip and uv ask,
and HTML) and each server; `--repeats` repeats, the order of the two projects
swapped every repeat. Server on `--server-cpus`, wrk on `--client-cpus`.

    .venv/bin/python bench/provenance_pages.py                 # ~2.5 minutes
    .venv/bin/python bench/provenance_pages.py --repeats 5 --duration 10
    .venv/bin/python bench/provenance_pages.py --forms HTML --no-nginx --repeats 8

Wall clock on this shared 2-core VM spreads ±30% between repeats, so `--instructions N`
also counts, as `bench/instructions.py` does, the instructions a `packyard serve` under
valgrind's callgrind executes for N warm requests of each page (instrumentation on
after start-up and 100 warm-up requests per page; one `callgrind_control --dump` per
page): the same count for the same code whatever else the machine does.

    .venv/bin/python bench/provenance_pages.py --instructions 2000   # + ~1 minute

Prints a Markdown report for bench/RESULTS.md. Everything listens on and talks to
127.0.0.1 only; every process started here is ended by its own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from replicas import (
    HARNESS,
    HOST,
    JSON_ACCEPT,
    NGINX_CONF,
    PACKYARD,
    Process,
    WrkResult,
    clean_environment,
    log,
    median,
    pinned,
    serving,
    wrk_result,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attestations import cases, verifier_call  # noqa: E402 - bench/ sibling
from instructions import callgrind, total_instructions, wait_until_up  # noqa: E402
from tests.builders import build_wheel  # noqa: E402 - after the path is set
from tests.e2e.servers import free_port  # noqa: E402

from packyard.attestations.verify import AttestationVerifier  # noqa: E402

ATTESTED = "attested-lib"
PLAIN = "plain-lib"
PROJECTS = (ATTESTED, PLAIN)
FORMS = {"JSON": JSON_ACCEPT, "HTML": "application/vnd.pypi.simple.v1+html"}
SERVERS = ("packyard", "nginx")
SUFFIX = {"JSON": "json", "HTML": "html"}
COUNT_WARM_UP = 100


@dataclass(frozen=True)
class Settings:
    work: Path
    files: int
    repeats: int
    duration: int
    connections: int
    server_cpus: str
    client_cpus: str
    forms: tuple[str, ...]
    nginx: bool


def packyard(data: Path, *args: str) -> str:
    """`packyard ARGS --data-dir DATA`; its stdout.

    Raises:
        RuntimeError: it failed (its output is in the message).
    """
    argv = [*PACKYARD, *args, "--data-dir", str(data)]
    result = subprocess.run(
        argv, env=clean_environment({}), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def prepare_store(settings: Settings) -> Path:
    """A store with both projects imported, and provenance on every `attested-lib` row."""
    dists = settings.work / "dists"
    dists.mkdir()
    for number in range(1, settings.files + 1):
        for project in PROJECTS:
            build_wheel(dists, project, f"1.{number}", requires_dist=("attrs>=23",))
    data = settings.work / "data"
    data.mkdir()
    packyard(data, "init")
    packyard(data, "import", str(dists), "--upstream", "none")
    verified = verifier_call(AttestationVerifier(), cases()["github"])()
    with contextlib.closing(sqlite3.connect(data / "packyard.db")) as db, db:
        changed = db.execute(
            "UPDATE files SET provenance = ?, provenance_publisher = ? "
            "WHERE project_id = (SELECT id FROM projects WHERE name = ?)",
            (verified.provenance, verified.summary, ATTESTED),
        ).rowcount
    if changed != settings.files:
        raise RuntimeError(f"provenance written to {changed} rows, not {settings.files}")
    return data


def get(base: str, path: str, accept: str) -> bytes:
    """The body of `GET path`.

    Raises:
        RuntimeError: not a 200.
    """
    connection = http.client.HTTPConnection(HOST, urlsplit(base).port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept": accept})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {base}{path}: {response.status} {body[:200]!r}")
    return body


def rendered_pages(base: str, settings: Settings) -> dict[tuple[str, str], bytes]:
    """Each page's bytes, checked: every file listed, provenance on `attested-lib`'s only.

    Raises:
        RuntimeError: a page lists other files or the wrong provenance.
    """
    pages = {}
    for project in PROJECTS:
        for form, accept in FORMS.items():
            pages[(project, form)] = get(base, f"/simple/{project}/", accept)
        files = json.loads(pages[(project, "JSON")])["files"]
        with_provenance = sum("provenance" in entry for entry in files)
        anchors = pages[(project, "HTML")].count(b"data-provenance=")
        expected = settings.files if project == ATTESTED else 0
        if len(files) != settings.files or with_provenance != expected or anchors != expected:
            raise RuntimeError(
                f"{project}: {len(files)} files, {with_provenance} with provenance in JSON, "
                f"{anchors} in HTML; expected {settings.files} files, {expected} with it"
            )
    return pages


@contextlib.contextmanager
def packyard_server(settings: Settings, data: Path) -> Iterator[tuple[Process, str]]:
    def make(port: int) -> Process:
        argv = [*PACKYARD, "serve", "--data-dir", str(data), "--host", HOST]
        argv += ["--port", str(port), "--upstream", "none"]
        log_path = settings.work / "packyard.log"
        return Process(pinned(settings.server_cpus, argv), clean_environment({}), log_path)

    with serving(make, "/healthz") as running:
        yield running


@contextlib.contextmanager
def nginx_server(
    settings: Settings, pages: dict[tuple[str, str], bytes]
) -> Iterator[tuple[Process, str]]:
    """nginx (1 worker, sendfile) serving each page's bytes at `/<project>.<json|html>`."""
    root = settings.work / "www"
    root.mkdir()
    for (project, form), body in pages.items():
        (root / f"{project}.{SUFFIX[form]}").write_bytes(body)
    state = settings.work / "nginx"
    (state / "tmp").mkdir(parents=True)

    def make(port: int) -> Process:
        conf = NGINX_CONF.format(
            state=state, host=HOST, port=port, root=root, access_log="off"
        ).replace("access_log off counted;", "access_log off;")
        (state / "nginx.conf").write_text(conf)
        argv = ["nginx", "-e", "stderr", "-p", str(state), "-c", str(state / "nginx.conf")]
        log_path = settings.work / "nginx.log"
        return Process(pinned(settings.server_cpus, argv), clean_environment({}), log_path)

    with serving(make, f"/{ATTESTED}.json") as running:
        yield running


def page_path(server: str, project: str, form: str) -> str:
    return f"/simple/{project}/" if server == "packyard" else f"/{project}.{SUFFIX[form]}"


def run_wrk(settings: Settings, base: str, path: str, accept: str, duration: int) -> WrkResult:
    """wrk -t1 on one page, with the harness's rotate.lua (one path)."""
    paths = settings.work / f"paths-{hashlib.sha256(path.encode()).hexdigest()[:12]}.txt"
    paths.write_text(path + "\n")
    extra = {
        "BENCH_PATHS": str(paths),
        "BENCH_MAX_REQUESTS": "2000000",
        "BENCH_ACCEPT": accept,
    }
    argv = ["wrk", "-t1", f"-c{settings.connections}", f"-d{duration}s", "--timeout", "10s"]
    argv += ["-s", str(HARNESS / "rotate.lua"), base]
    process = subprocess.Popen(
        pinned(settings.client_cpus, argv),
        env=clean_environment(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    result = wrk_result(process, duration + 60)
    if result.errors:
        raise RuntimeError(f"wrk {base}{path}: {result.errors} errors")
    return result


Key = tuple[str, str, str]  # server, form, project


def measure(
    settings: Settings, bases: dict[str, tuple[Process, str]]
) -> dict[Key, list[tuple[WrkResult, float]]]:
    """(wrk result, server CPU %) of every repeat, per server, form and project."""
    for server, (_, base) in bases.items():  # warm: code paths, caches, connections
        for form in settings.forms:
            for project in PROJECTS:
                accept = FORMS[form]
                run_wrk(settings, base, page_path(server, project, form), accept, 2)
    samples: dict[Key, list[tuple[WrkResult, float]]] = {}
    for repeat in range(1, settings.repeats + 1):
        order = PROJECTS if repeat % 2 else PROJECTS[::-1]
        for server, (process, base) in bases.items():
            for form in settings.forms:
                for project in order:
                    accept = FORMS[form]
                    before, started = process.cpu_seconds(), time.perf_counter()
                    path = page_path(server, project, form)
                    result = run_wrk(settings, base, path, accept, settings.duration)
                    cpu = (process.cpu_seconds() - before) / (time.perf_counter() - started)
                    samples.setdefault((server, form, project), []).append((result, cpu * 100))
                    log(
                        f"repeat {repeat} {server} {form} {project}: "
                        f"{result.requests_per_second:,.0f} req/s, p99 {result.p99_ms:.2f} ms, "
                        f"CPU {cpu * 100:.0f}%"
                    )
    return samples


def instruction_counts(settings: Settings, data: Path, requests: int) -> dict[Key, float]:
    """Instructions per warm request of each page, counted by callgrind in `packyard serve`."""
    out = settings.work / "callgrind.out"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    argv += [*PACKYARD, "serve", "--data-dir", str(data), "--host", HOST]
    port = free_port()
    argv += ["--port", str(port), "--upstream", "none"]
    process = Process(argv, clean_environment({}), settings.work / "callgrind-serve.log")
    phases = [(form, project) for form in FORMS for project in PROJECTS]
    try:
        base = f"http://{HOST}:{port}"
        wait_until_up(base)
        with httpx.Client(base_url=base, timeout=120) as client:

            def page(form: str, project: str) -> None:
                response = client.get(f"/simple/{project}/", headers={"Accept": FORMS[form]})
                if response.status_code != 200:
                    raise RuntimeError(f"{project} ({form}) answered {response.status_code}")

            for form, project in phases:
                for _ in range(COUNT_WARM_UP):
                    page(form, project)
            callgrind("on", process.process.pid)
            for form, project in phases:
                for _ in range(requests):
                    page(form, project)
                subprocess.run(
                    ["callgrind_control", "--dump", str(process.process.pid)],
                    check=True,
                    capture_output=True,
                )
            callgrind("off", process.process.pid)
    finally:
        process.stop()
    return {
        ("packyard", form, project): total_instructions(out.with_name(f"{out.name}.{number}"))
        / requests
        for number, (form, project) in enumerate(phases, 1)
    }


def count_report(counts: dict[Key, float], requests: int) -> str:
    lines = [
        f"Instructions per warm request (callgrind, {requests} requests per page after "
        f"{COUNT_WARM_UP} of warm-up):",
        "",
        "| page | with provenance | without | with / without |",
        "|---|---:|---:|---:|",
    ]
    for form in FORMS:
        attested = counts[("packyard", form, ATTESTED)]
        plain = counts[("packyard", form, PLAIN)]
        lines.append(f"| {form} | {attested:,.0f} | {plain:,.0f} | {attested / plain:.3f} |")
    return "\n".join(lines)


def report(
    settings: Settings,
    samples: dict[Key, list[tuple[WrkResult, float]]],
    pages: dict[tuple[str, str], bytes],
) -> str:
    def rps(key: Key) -> list[float]:
        return [result.requests_per_second for result, _ in samples[key]]

    servers = [server for server in SERVERS if server == "packyard" or settings.nginx]

    lines = [
        f"{settings.files} wheels per project; wrk -t1 -c{settings.connections} "
        f"-d{settings.duration}s on one page, {settings.repeats} repeats (projects' order "
        f"swapped each repeat); server on CPU {settings.server_cpus}, wrk on CPU "
        f"{settings.client_cpus}.",
        "",
        "| server | page | bytes | req/s median | per repeat | p99 ms | server CPU % |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for server in servers:
        for form in settings.forms:
            for project in PROJECTS:
                key = (server, form, project)
                per_repeat = " / ".join(f"{value:,.0f}" for value in rps(key))
                p99 = median([result.p99_ms for result, _ in samples[key]])
                cpu = median([value for _, value in samples[key]])
                lines.append(
                    f"| {server} | {project} ({form}) | {len(pages[(project, form)]):,} "
                    f"| {median(rps(key)):,.0f} | {per_repeat} | {p99:.2f} | {cpu:.0f} |"
                )
    lines += [
        "",
        "| server | page | with / without provenance (medians) | per-repeat ratios, median "
        "| packyard / nginx (with, without) |",
        "|---|---|---:|---:|---|",
    ]
    for server in servers:
        for form in settings.forms:
            attested, plain = rps((server, form, ATTESTED)), rps((server, form, PLAIN))
            pairs = median([a / p for a, p in zip(attested, plain, strict=True)])
            versus = ""
            if server == "packyard" and settings.nginx:
                shares = [
                    median(rps(("packyard", form, project))) / median(rps(("nginx", form, project)))
                    for project in PROJECTS
                ]
                versus = " / ".join(f"{share:.0%}" for share in shares)
            lines.append(
                f"| {server} | {form} | {median(attested) / median(plain):.3f} | {pairs:.3f} "
                f"| {versus} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30, help="wheels per project")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--forms", nargs="+", choices=tuple(FORMS), default=list(FORMS))
    parser.add_argument("--no-nginx", action="store_true", help="packyard only")
    parser.add_argument(
        "--instructions", type=int, default=0, help="requests per page under callgrind (0: none)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="packyard-bench-provenance-") as folder:
        Path(folder).chmod(0o755)  # nginx's worker (`nobody` under root) reads the pages
        settings = Settings(
            Path(folder),
            args.files,
            args.repeats,
            args.duration,
            args.connections,
            args.server_cpus,
            args.client_cpus,
            tuple(args.forms),
            not args.no_nginx,
        )
        data = prepare_store(settings)
        with contextlib.ExitStack() as stack:
            running = stack.enter_context(packyard_server(settings, data))
            pages = rendered_pages(running[1], settings)
            bases = {"packyard": running}
            if settings.nginx:
                bases["nginx"] = stack.enter_context(nginx_server(settings, pages))
            samples = measure(settings, bases)
        print(report(settings, samples, pages))
        if args.instructions:
            counts = instruction_counts(settings, data, args.instructions)
            print("\n" + count_report(counts, args.instructions))


if __name__ == "__main__":
    main()
