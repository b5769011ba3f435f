"""Benchmark: one OSV `querybatch` of 500 packages against a real packyard (target < 100 ms).

    .venv/bin/python bench/osv_api.py [--queries 500] [--repeats 30] [--snapshot PATH]

Imports the whole PyPA snapshot (`packyard advisories import`) into a fresh data
directory, starts `packyard serve`, and posts batches as `uv audit` does
(`POST /osv/v1/querybatch`, `{"package": {"name", "ecosystem": "PyPI"}, "version"}`
per locked package). A batch is a realistic lock file: about half the names have
records in the snapshot (at versions some records affect, and at versions none
does), the rest have none (in-house or unaffected projects). Timed per request on
the client, over one kept-alive connection:

- the first batch after the server started (it loads the index: every record
  parsed once per import, per process);
- the same batch again (`repeats` times): what a CI job re-running an audit costs;
- a fresh batch each time (`repeats` times, other names and versions): nothing
  remembered from earlier answers.

Prints a Markdown table (median, p90, min, max) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.advisory_data import SNAPSHOT  # noqa: E402
from tests.e2e.servers import PackyardProcess, packyard  # noqa: E402

TARGET_MS = 100.0
Query = dict[str, object]


def snapshot_versions(snapshot: Path) -> dict[str, list[str]]:
    """Per project of the snapshot, the versions its records list (affected ones)."""
    versions: dict[str, list[str]] = {}
    for path in sorted(snapshot.glob("*/*.yaml")):
        record = yaml.safe_load(path.read_bytes())
        for affected in record.get("affected", []):
            listed = [str(version) for version in affected.get("versions", [])]
            versions.setdefault(path.parent.name, []).extend(listed)
    return versions


def lock_file(rng: random.Random, known: dict[str, list[str]], size: int) -> list[Query]:
    """`size` queries: half names with records (a listed version, or a far newer one
    no record affects), half names without any."""
    names = sorted(known)
    queries: list[Query] = []
    for number in range(size):
        if number % 2 == 0:
            name = rng.choice(names)
            listed = known[name]
            version = rng.choice(listed) if listed and rng.random() < 0.6 else "999.0"
        else:
            name = f"internal-lib-{rng.randrange(1_000_000)}"
            version = f"{rng.randrange(1, 5)}.{rng.randrange(20)}.{rng.randrange(10)}"
        queries.append({"package": {"name": name, "ecosystem": "PyPI"}, "version": version})
    return queries


def timed(client: httpx.Client, queries: list[Query]) -> tuple[float, int]:
    """Milliseconds for one batch, and how many record ids it answered."""
    start = time.perf_counter()
    answer = client.post("/osv/v1/querybatch", json={"queries": queries})
    elapsed = (time.perf_counter() - start) * 1000
    answer.raise_for_status()
    results = answer.json()["results"]
    assert len(results) == len(queries)
    return elapsed, sum(len(result.get("vulns", [])) for result in results)


def row(label: str, times: list[float], found: int) -> str:
    ordered = sorted(times)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    median = statistics.median(ordered)
    met = "yes" if median < TARGET_MS else "no"
    spread = f"{p90:.1f} | {ordered[0]:.1f} | {ordered[-1]:.1f}"
    return f"| {label} | {len(times)} | {median:.1f} | {spread} | {found} | {met} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    args = parser.parse_args()
    known = snapshot_versions(args.snapshot)
    rng = random.Random(12)
    with TemporaryDirectory() as temp:
        data = Path(temp) / "data"
        for command in (("migrate",), ("advisories", "import", str(args.snapshot))):
            done = packyard(*command, "--data-dir", str(data))
            if done.returncode != 0:
                raise SystemExit(done.stdout + done.stderr)
        with (
            PackyardProcess(data) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            batch = lock_file(rng, known, args.queries)
            first, found = timed(client, batch)
            same = [timed(client, batch)[0] for _ in range(args.repeats)]
            fresh_found = 0
            fresh = []
            for _ in range(args.repeats):
                elapsed, fresh_found = timed(client, lock_file(rng, known, args.queries))
                fresh.append(elapsed)
    print(f"{args.queries} queries per batch; {len(known)} projects with records in the snapshot\n")
    print("| batch | runs | median ms | p90 ms | min ms | max ms | ids answered | under 100 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print(row("first after start (loads the index)", [first], found))
    print(row("the same batch again", same, found))
    print(row("a fresh batch each time", fresh, fresh_found))


if __name__ == "__main__":
    main()
