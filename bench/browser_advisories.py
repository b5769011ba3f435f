"""What a browser project page pays for its advisories: Django's 116 records, 352 versions.

    .venv/bin/python bench/browser_advisories.py [--repeats 9]

In process, no server: the part of the page that `browser/vulnerabilities.py` adds,
for `django` with the PyPA snapshot's records and a release history of every version
those records list (352). Three ways, each the median of `repeats` runs:

- naive: each record asked about each version (`Advisories.affecting`, a PEP 440 parse
  per record and version) and every row described, on every view: what a page would
  cost without `DescribedProject`;
- first view after an import: `DescribedProject` built (rows described, versions sorted
  once, each range bisected into them) and the page's view made;
- a later view: the kept `DescribedProject`, accepted risks applied.

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tests.advisory_data import SNAPSHOT  # noqa: E402

from packyard.advisories.index import Advisories  # noqa: E402 - after the path is set
from packyard.advisories.sources import read_source  # noqa: E402
from packyard.browser.advisories import (  # noqa: E402
    DescribedProject,
    advisory_row,
    project_advisories,
)


def history(state: Advisories) -> tuple[str, ...]:
    """Every PEP 440 version the django records list, newest first (a project page's order)."""
    found: set[Version] = set()
    for record in state.for_project("django"):
        for entry in record.affected["django"]:
            found |= set(entry.listed)
    return tuple(str(v) for v in sorted(found, reverse=True))


def naive(state: Advisories, versions: tuple[str, ...], shown: str) -> int:
    fresh = Advisories(state.generation, state.by_name)  # no remembered answers
    rows = [advisory_row(record, "django") for record in fresh.for_project("django")]
    marks = {v: len(fresh.affecting("django", v)) for v in versions}
    return len(rows) + len(marks) + len(fresh.affecting("django", shown))


def timed(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    repeats = parser.parse_args().repeats
    records = tuple(e.record for e in read_source(SNAPSHOT / "django") if e.record is not None)
    state = Advisories(1, {"django": tuple(r for r in records if r.withdrawn is None)})
    versions = history(state)
    shown = "3.2"
    kept = DescribedProject("django", state.for_project("django"))
    kept.hits(versions)
    results = {
        "naive (every view)": timed(lambda: naive(state, versions, shown), repeats),
        "first view after an import": timed(
            lambda: project_advisories(
                state, DescribedProject("django", state.for_project("django")), versions, shown
            ),
            repeats,
        ),
        "a later view": timed(lambda: project_advisories(state, kept, versions, shown), repeats),
    }
    print(f"django: {len(state.for_project('django'))} records, {len(versions)} versions\n")
    print("| how | median ms |")
    print("|---|---|")
    for how, ms in results.items():
        print(f"| {how} | {ms:.2f} |")


if __name__ == "__main__":
    main()
