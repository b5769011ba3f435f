"""`packyard advisories import`: wall time and peak RSS of a whole import.

Targets (issue 12): the whole PyPA snapshot (2,661 files) imported in under
30 s and under 200 MB. Sources, each on SQLite and on PostgreSQL:

- `snapshot`: shared/advisories/pypa-advisory-database/vulns, YAML files;
- `zip`: an osv.dev-like `all.zip` of JSON records, made here: the snapshot's
  records converted to JSON, plus synthetic GHSA records (copies of real ones
  under new ids, with aliases and a CVSS severity, as osv.dev ships them) and
  MAL records (malicious packages: every version of a made-up name), to about
  `--zip-records` (default 15,000, osv.dev's PyPI export in 2024).

Each figure is the median of `--repeats` runs (default 3), each a fresh
`packyard advisories import` process into an empty store (a new SQLite file,
or a new PostgreSQL database): start-up, reading, checking and the one
transaction, as an operator pays for it. Peak RSS is the child's
`ru_maxrss` (os.wait4). A second import of the same source into the same
store (every record unchanged) is timed as well: the scheduled refresh's
usual case.

PostgreSQL is a throwaway server (tests/postgres.py) on this machine.
packyard runs from a copy of HEAD's `src` taken at start (`--tree working`
for the checkout as it is), since others edit the checkout while a run goes on.

    .venv/bin/python bench/advisories_import.py              # ~3 minutes
    .venv/bin/python bench/advisories_import.py --repeats 5 --engines sqlite

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.advisory_data import SNAPSHOT  # noqa: E402
from tests.postgres import running_postgres  # noqa: E402

TARGET_SECONDS = 30.0
TARGET_MB = 200.0


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # user + system: what the wall time would be on an idle machine, roughly
    peak_mb: float
    output: str


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-advisories-") as scratch:
        work = Path(scratch)
        source, described = snapshot(work, args.tree)
        archive = build_zip(work / "all.zip", args.zip_records)
        sources = {"snapshot": SNAPSHOT, "zip": archive}
        rows: list[str] = []
        with ExitStack() as stack:
            postgres = (
                stack.enter_context(running_postgres()) if "postgresql" in args.engines else None
            )
            for engine in args.engines:
                for name, path in sources.items():
                    first, again = [], []
                    for repeat in range(args.repeats):
                        with ExitStack() as run_stack:
                            if engine == "sqlite":
                                env = {}
                            else:
                                assert postgres is not None
                                url = run_stack.enter_context(postgres.database())
                                env = {"PACKYARD_DATABASE_URL": url}
                            data = work / f"data-{engine}-{name}-{repeat}"
                            init(source, data, env)
                            first.append(import_once(source, path, data, env))
                            again.append(import_once(source, path, data, env))
                    rows.append(row(engine, name, path, first, again))
        print(report(described, args, rows))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--zip-records", type=int, default=15_000)
    parser.add_argument(
        "--engines", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--tree",
        choices=["head", "working"],
        default="head",
        help="measure the committed HEAD (a snapshot taken at start) or the working tree",
    )
    return parser.parse_args()


def snapshot(work: Path, tree: str) -> tuple[Path, str]:
    """The `src` folder packyard runs from, and what it is."""
    commit = git("rev-parse", "--short", "HEAD").decode().strip()
    if tree == "working":
        return REPO / "src", f"working tree on {commit}"
    archive = git("archive", "--format=tar", "HEAD", "src")
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, timeout=60, check=True)
    return work / "src", f"commit {commit}"


def git(*args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, timeout=60, check=True
    ).stdout


def environment(source: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    return {**env, "PYTHONPATH": str(source), **extra}


def init(source: Path, data: Path, env: dict[str, str]) -> None:
    """An empty store, migrated: the import measured, not the schema's creation."""
    subprocess.run(
        [sys.executable, "-m", "packyard", "migrate", "--data-dir", str(data)],
        env=environment(source, env),
        capture_output=True,
        timeout=300,
        check=True,
    )


def import_once(source: Path, path: Path, data: Path, env: dict[str, str]) -> Run:
    argv = [sys.executable, "-m", "packyard", "advisories", "import", str(path)]
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            [*argv, "--data-dir", str(data)],
            env=environment(source, env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{output}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, output)  # ru_maxrss: KiB on Linux


def row(engine: str, name: str, path: Path, first: list[Run], again: list[Run]) -> str:
    seconds = statistics.median(run.seconds for run in first)
    peak = statistics.median(run.peak_mb for run in first)
    spread = f"{min(r.seconds for r in first):.1f}–{max(r.seconds for r in first):.1f}"
    met = "yes" if seconds < TARGET_SECONDS and peak < TARGET_MB else "**no**"
    counts = summary(first[0].output)
    cpu = statistics.median(run.cpu_seconds for run in first)
    return (
        f"| {engine} | {name} ({records(path)} files) | {counts} | **{seconds:.1f} s** ({spread}) "
        f"| {cpu:.1f} s | **{peak:.0f} MB** | {statistics.median(r.seconds for r in again):.1f} s "
        f"| {statistics.median(r.peak_mb for r in again):.0f} MB | {met} |"
    )


def summary(output: str) -> str:
    """`added 2659, skipped 2` from the command's report."""
    found = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(": ")
        if kind in ("added", "skipped") and rest.split(" ")[0].isdigit():
            found[kind] = rest.split(" ")[0]
    return ", ".join(f"{kind} {number}" for kind, number in found.items())


def records(path: Path) -> str:
    if path.is_dir():
        return f"{sum(1 for _ in path.rglob('*.yaml')):,}"
    with zipfile.ZipFile(path) as archive:
        return f"{len(archive.infolist()):,}"


def report(described: str, args: argparse.Namespace, rows: list[str]) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return "\n".join(
        [
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {described}, {machine}; "
            f"median of {args.repeats} runs (range of the first import's seconds in brackets).",
            "",
            "| engine | source | first import | time | CPU | peak RSS | again (unchanged) "
            "| peak RSS | target met (< 30 s, < 200 MB) |",
            "|---|---|---|---:|---:|---:|---:|---:|---|",
            *rows,
        ]
    )


def build_zip(path: Path, total: int) -> Path:
    """osv.dev's `PyPI/all.zip` in shape: one JSON record per member."""
    real = [
        yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader) for p in sorted(SNAPSHOT.rglob("*.yaml"))
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        written = 0
        for record in real:
            archive.writestr(f"{record['id']}.json", dump(record))
            written += 1
        for record in synthetic(real, total - written):
            archive.writestr(f"{record['id']}.json", dump(record))
    return path


def synthetic(real: list[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """GHSA copies of real records (a third) and MAL records (the rest)."""
    ghsa = count // 3
    for number in range(ghsa):
        base = real[number % len(real)]
        ghsa_id = f"GHSA-{number:04x}-bnch-{number % 7919:04x}"
        yield {
            **base,
            "id": ghsa_id,
            "aliases": [base["id"], *base.get("aliases", [])],
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
            ],
            "database_specific": {
                "github_reviewed": True,
                "severity": "HIGH",
                "cwe_ids": ["CWE-79"],
            },
        }
    for number in range(count - ghsa):
        name = f"evil-package-{number}"
        yield {
            "id": f"MAL-2024-{number + 1000}",
            "modified": "2024-09-01T12:00:00Z",
            "published": "2024-08-01T12:00:00Z",
            "summary": f"Malicious code in {name} (PyPI)",
            "details": "This package contains code that steals credentials.\n" * 3,
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": name},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                    "versions": ["0.0.1", "0.0.2", "1.0.0"],
                    "database_specific": {"source": "https://github.com/ossf/malicious-packages"},
                }
            ],
            "credits": [{"name": "bench", "type": "FINDER"}],
        }


def dump(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str, indent=2)


if __name__ == "__main__":
    main()
