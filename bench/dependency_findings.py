"""Benchmark: what checking in-house requirements adds to an import and to an upload.

    .venv/bin/python bench/dependency_findings.py [--releases 1000] [--repeats 5]

On a fresh SQLite store, imports the whole PyPA snapshot, then records
`--releases` in-house releases with 8 requirements each (as uploads do,
`record_release`): a realistic mix of pins and ranges on projects the
snapshot names (some at affected versions, some not) and on projects it does
not. Then times, median of `--repeats` runs:

- `refresh_findings` alone, in a transaction rolled back after each run (what
  every import now does before it commits), the first run finding everything
  new, and a run on rows already up to date (a re-import);
- a whole re-import of the snapshot (nothing changed), with those releases
  stored and, for comparison, without any;
- `check_release` of one upload's requirements (django, requests, jinja2,
  urllib3 and four names without records): what an upload waits for.

Prints a Markdown table for bench/RESULTS.md (CPU time of this process,
median), and the peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.advisory_data import SNAPSHOT  # noqa: E402

from packyard.advisories.dependency_findings import (  # noqa: E402
    check_release,
    record_release,
    refresh_findings,
)
from packyard.advisories.importing import import_entries  # noqa: E402
from packyard.advisories.sources import read_source  # noqa: E402
from packyard.db.engine import create_database_engine, migrate, session_factory_for  # noqa: E402
from packyard.db.models import File, Project  # noqa: E402

NOW = datetime(2024, 11, 1, tzinfo=UTC)
UPLOAD = [
    "django==3.2.0",
    "requests>=2.19",
    "jinja2>=2.10,<2.11",
    'urllib3<2; python_version < "3.8"',
    "acme-core>=1.0",
    "attrs>=21",
    "click~=8.1",
    "rich",
]


def requirements_for(rng: random.Random, with_records: list[str]) -> list[str]:
    """8 requirements: 4 on projects with records (pins, ranges, open), 4 without."""
    texts = []
    for name in rng.sample(with_records, 4):
        texts.append(
            rng.choice(
                [
                    f"{name}=={rng.randint(0, 3)}.{rng.randint(0, 9)}",
                    f"{name}>={rng.randint(0, 3)}.{rng.randint(0, 9)}",
                    f"{name}>={rng.randint(0, 2)}.0,<{rng.randint(3, 5)}",
                    name,
                ]
            )
        )
    texts += [f"in-house-{rng.randint(0, 300)}>=1.{n}" for n in range(4)]
    return texts


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """The median CPU time of `run` in this process: everything here (SQLite
    included) runs in it, and CPU time is what a loaded, shared machine moves
    least (its wall clock can be several times longer)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(f"sqlite:///{directory}/packyard.db")
        migrate(engine)
        sessions = session_factory_for(engine)

        def reimport() -> None:
            import_entries(sessions, read_source(SNAPSHOT), actor="bench", source="bench")

        reimport()
        without = median_ms(reimport, args.repeats)
        with_records = sorted({path.parent.name for path in SNAPSHOT.glob("*/*.yaml")})
        with sessions.begin() as session:
            for number in range(args.releases):
                project = Project(name=f"acme-{number}", display_name="acme", created_at=NOW)
                session.add(project)
                session.add(
                    File(
                        project=project,
                        filename=f"acme_{number}-1.0-py3-none-any.whl",
                        version="1.0",
                        packagetype="bdist_wheel",
                        python_version="py3",
                        size=1,
                        sha256=f"{number:064d}",
                        blake2_256=f"{number:064d}",
                        md5="0" * 32,
                        upload_time=NOW,
                        blob_key=f"k{number}",
                    )
                )
                requirements = [Requirement(t) for t in requirements_for(rng, with_records)]
                record_release(session, f"acme-{number}", "1.0", requirements, [], NOW)

        def refresh() -> int:
            with sessions() as session, session.begin():
                found = refresh_findings(session, actor="bench")
                session.rollback()
            return len(found)

        first = median_ms(refresh, args.repeats)
        new = refresh()
        reimport()  # the rows are now up to date
        again = median_ms(refresh, args.repeats)
        with_releases = median_ms(reimport, args.repeats)
        upload = [Requirement(text) for text in UPLOAD]

        def check() -> None:
            with sessions() as session:
                check_release(session, upload)

        checked = median_ms(check, args.repeats * 4)
        engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = args.releases * 8
    print(f"{args.releases} in-house releases, {rows} requirement rows, {new} findings\n")
    print("| what | median |")
    print("|---|---|")
    print(f"| refresh_findings, every finding new | {first:.0f} ms |")
    print(f"| refresh_findings, rows up to date | {again:.0f} ms |")
    print(f"| re-import of the snapshot, no in-house release | {without:.0f} ms |")
    print(f"| re-import of the snapshot, {args.releases} releases | {with_releases:.0f} ms |")
    print(f"| check_release of one upload (8 requirements) | {checked:.1f} ms |")
    print(f"\npeak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
