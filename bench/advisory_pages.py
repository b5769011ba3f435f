"""Warm `/simple/<project>/` pages with advisories enforced, in instructions per request.

The issue's target: a warm page with advisories applied costs within 5% of one without.
Wall clock cannot judge 5% on this machine (bench/RESULTS.md), so, like
`bench/instructions.py`, this counts the instructions a `packyard serve` process executes
for a fixed number of warm requests, under valgrind's callgrind, for two commits: one
before the advisory component (`--before`) and one with it (`--after`).

Both serve the same state: the whole PyPA snapshot imported (`packyard advisories import`),
and a local upstream (`tests/e2e/json_upstream.py`) with two projects of the same shape:
`django`, one wheel for each of the 352 versions the snapshot's django records list (most
of them affected, by a dozen advisories on average), and `quiet-lib`, the same versions
under a name no advisory names. The upstream's `advisories_policy` is `--policy` (yank by
default: every affected file served yanked with its reason, and the `_advisories` list).
Each page is requested as JSON (what pip and uv ask for) and as HTML, `--requests` times
after a warm-up, each phase counted on its own (`callgrind_control --dump`).

    .venv/bin/python bench/advisory_pages.py --before e54796d^ --after HEAD [--policy yank]
    .venv/bin/python bench/advisory_pages.py --before HEAD --after HEAD --before-without-records

`--before-without-records`: the `before` run imports no advisory at all, so one commit is
compared with and without advisories applied (every page then passes the component untouched).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instructions import (  # noqa: E402 - bench/ sibling
    callgrind,
    source_of,
    total_instructions,
    wait_until_up,
)
from tests.advisory_data import SNAPSHOT  # noqa: E402
from tests.builders import build_wheel  # noqa: E402 - after the path is set
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest  # noqa: E402
from tests.e2e.servers import free_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
WARM_UP = 100
PHASES = (
    ("django", "json"),
    ("quiet-lib", "json"),
    ("django", "html"),
    ("quiet-lib", "html"),
)
ACCEPT = {
    "json": "application/vnd.pypi.simple.v1+json",
    "html": "application/vnd.pypi.simple.v1+html",
}


def django_versions() -> list[str]:
    """Every PEP 440 version the snapshot's django records list, oldest first."""
    found: set[str] = set()
    for path in (SNAPSHOT / "django").glob("*.yaml"):
        for entry in yaml.safe_load(path.read_text())["affected"]:
            found.update(str(version) for version in entry.get("versions", []))
    valid = []
    for version in found:
        try:
            valid.append(Version(version))
        except InvalidVersion:
            continue
    return [str(version) for version in sorted(valid)]


def write_upstream(root: Path) -> None:
    """The upstream's files: django and quiet-lib, one wheel per version."""
    dists = root / "dists"
    dists.mkdir(parents=True)
    uploaded = datetime(2024, 1, 1, tzinfo=UTC)
    files = [
        (build_wheel(dists, name, version), uploaded)
        for version in django_versions()
        for name in ("django", "quiet-lib")
    ]
    write_manifest(root / "upstream", files)


def measure(
    src: Path, work: Path, upstream_url: str, policy: str, requests: int, *, records: bool = True
) -> list[float]:
    """Instructions per request of each phase, for `packyard serve` from `src`, with the
    snapshot's advisories imported (or none, without `records`)."""
    data = work / "data"
    config = work / "packyard.toml"
    config.write_text(
        f'[[upstreams]]\nurl = "{upstream_url}"\nname = "bench-upstream"\n'
        f'advisories_policy = "{policy}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(src), "PIP_CONFIG_FILE": os.devnull}
    port = free_port()
    out = work / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    serve = ["-m", "packyard", "serve", "--config", str(config), "--data-dir", str(data)]
    server = subprocess.Popen(
        [*valgrind, PYTHON, *serve, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        state = ["--config", str(config), "--data-dir", str(data)]
        if records:
            import_snapshot(env, state)
        with httpx.Client(base_url=url, timeout=120) as client:
            for project, form in PHASES:
                for _ in range(WARM_UP):
                    get(client, project, form)
            callgrind("on", server.pid)
            for project, form in PHASES:
                for _ in range(requests):
                    get(client, project, form)
                dump(server.pid)
            callgrind("off", server.pid)
    finally:
        server.terminate()
        server.wait(300)
    return [phase_total(out, number) / requests for number in range(1, len(PHASES) + 1)]


def import_snapshot(env: dict[str, str], state: list[str]) -> None:
    imported = subprocess.run(
        [PYTHON, "-m", "packyard", "advisories", "import", str(SNAPSHOT), *state],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if imported.returncode != 0:
        raise RuntimeError(f"advisories import failed: {imported.stdout}{imported.stderr}")


def get(client: httpx.Client, project: str, form: str) -> None:
    response = client.get(f"/simple/{project}/", headers={"Accept": ACCEPT[form]})
    if response.status_code != 200:
        raise RuntimeError(f"{project} ({form}) answered {response.status_code}")


def dump(pid: int) -> None:
    """Write the counts since the last dump to the next `callgrind.out.N` and reset them."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)


def phase_total(out: Path, number: int) -> int:
    """The instructions of the `number`th dump (callgrind writes `<out>.<number>`)."""
    return total_instructions(out.with_name(f"{out.name}.{number}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit (or ref) without the component")
    parser.add_argument("--after", default="HEAD", help="commit (or ref) with it")
    parser.add_argument("--policy", default="yank", choices=("warn", "yank", "hide", "deny"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--before-without-records", action="store_true", help="import no advisory for `before`"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packyard-advisory-pages-"))
    try:
        write_upstream(work)
        counts: dict[str, list[float]] = {}
        with JsonUpstreamProcess(work / "upstream") as upstream:
            for label, commit in (("before", args.before), ("after", args.after)):
                src = source_of(commit, work / label / "tree")
                records = label == "after" or not args.before_without_records
                counts[label] = measure(
                    src,
                    work / label,
                    upstream.index_url,
                    args.policy,
                    args.requests,
                    records=records,
                )
        print(f"policy {args.policy}, {args.requests} warm requests per phase")
        print("| page | before | after | after / before |")
        print("|---|---:|---:|---:|")
        for index, (project, form) in enumerate(PHASES):
            before, after = counts["before"][index], counts["after"][index]
            print(f"| {project} ({form}) | {before:,.0f} | {after:,.0f} | {after / before:.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
