"""Search benchmark: median and worst query at 10,000 and 100,000 projects.

    .venv/bin/python bench/search.py [--projects 10000 100000] [--rounds 20]
        [--url URL | --postgres]

Targets at 100,000 projects: median query under 25 ms, worst under 100 ms.

For each size, builds an index of synthetic projects (a tenth in-house, with
summaries, authors, classifiers, dependencies, a few yanked, and download
counts from a `FixedPopularity`, so the ranking's tiers and tie-breaks all
run), then times typical queries through `SearchIndex.search` (the parse and
the SQL, as a page view runs them, with its count limit), and prints a
Markdown table: each query's median and slowest of `rounds` runs, then the
median over every run and the worst query (the highest per-query median). The default index is a
SQLite file in a temporary directory, as `<data_dir>/search.db` is in
production; `--url` (PostgreSQL) is emptied first.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy

from packyard.browser.service import MAX_RESULTS
from packyard.model import SOURCE_LOCAL
from packyard.search.documents import SearchDocument
from packyard.search.index import SearchIndex, open_index
from packyard.search.popularity import FixedPopularity
from packyard.search.query import parse_query

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.postgres import running_postgres

WORDS = [
    "http",
    "client",
    "server",
    "async",
    "fast",
    "data",
    "frame",
    "parse",
    "json",
    "yaml",
    "toml",
    "test",
    "mock",
    "cloud",
    "storage",
    "queue",
    "cache",
    "web",
    "api",
    "tool",
    "kit",
    "core",
    "util",
    "log",
    "metric",
    "trace",
    "auth",
    "token",
    "crypto",
    "image",
    "audio",
    "video",
    "graph",
    "plot",
    "math",
    "stats",
    "model",
    "learn",
    "text",
    "lang",
    "sql",
    "orm",
    "schema",
]
CLASSIFIERS = (
    "Framework :: Django",
    "Framework :: Flask",
    "Programming Language :: Python :: 3",
    "License :: OSI Approved :: MIT License",
    "Topic :: Internet :: WWW/HTTP",
)
QUERIES = (
    "http",
    "requests",
    "req",
    "http-client",
    "yanked:show web",
    "async http client",
    "pro",
    "source:in-house",
    "depends:project-42",
    "data source:public",
    "author:jane web",
    'classifier:"Framework :: Django" api',
)


def documents(count: int, rng: random.Random) -> list[SearchDocument]:
    names = ["requests", *(f"project-{i}" for i in range(count - 1))]
    result = []
    for i, name in enumerate(names):
        name = name if i % 3 or i == 0 else f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}"
        result.append(
            SearchDocument(
                name=name,
                display_name=name,
                source=SOURCE_LOCAL if i % 10 == 0 else "pypi",
                summary=" ".join(rng.choice(WORDS) for _ in range(8)),
                version=f"1.{i % 7}",
                author=rng.choice(("Jane Doe", "John Roe", "Ada", "")),
                classifiers=tuple(rng.sample(CLASSIFIERS, 2)),
                dependencies=tuple(f"project-{rng.randrange(count)}" for _ in range(3)),
                yanked=i % 50 == 7,
            )
        )
    return result


def popularity(docs: list[SearchDocument], rng: random.Random) -> FixedPopularity:
    """Downloads for a fifth of the projects, skewed as real usage is."""
    return FixedPopularity({d.name: int(rng.paretovariate(1.2) * 10) for d in docs[::5]})


def timed(index: SearchIndex, text: str, rounds: int) -> tuple[list[float], int]:
    """Milliseconds of each of `rounds` parses and searches of `text`, and the hit count."""
    samples = []
    total = 0
    for _ in range(rounds):
        started = time.perf_counter()
        # As a page view searches: the count stops where the pages do.
        total = index.search(parse_query(text), limit=20, count_limit=MAX_RESULTS).total
        samples.append((time.perf_counter() - started) * 1000)
    return samples, total


def run(index: SearchIndex, projects: int, rounds: int) -> None:
    """Fill `index` with `projects` documents, time every query, print the table."""
    rng = random.Random(1)
    docs = documents(projects, rng)
    started = time.perf_counter()
    for start in range(0, len(docs), 5_000):  # transactions of a sensible size
        index.upsert(docs[start : start + 5_000])
    index.set_downloads(popularity(docs, rng).downloads())
    if index.postgres:
        # The statistics autovacuum gathers within a minute of such a load: without
        # them the planner guesses, and `depends:` took 2 ms in one run, 176 in the next.
        with index.engine.begin() as connection:
            connection.execute(sqlalchemy.text("ANALYZE search_projects, search_dependencies"))
    built = time.perf_counter() - started
    print(f"### {projects:,} projects\n")
    print(f"Indexed in {built:.1f} s ({index.engine.dialect.name}), {rounds} runs per query.\n")
    print("| query | hits | median ms | slowest ms |")
    print("|---|---:|---:|---:|")
    every: list[float] = []
    medians = []
    for text in QUERIES:
        samples, hits = timed(index, text, rounds)
        every.extend(samples)
        medians.append((statistics.median(samples), text))
        print(f"| `{text}` | {hits} | {medians[-1][0]:.1f} | {max(samples):.1f} |")
    worst, worst_text = max(medians)
    print(f"| **median of every run** | | **{statistics.median(every):.1f}** | |")
    print(f"| **worst query** (`{worst_text}`) | | **{worst:.1f}** | |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", help="index URL (default: SQLite in a temporary directory)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL (tests/postgres.py) and index there",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.url
        if args.postgres:
            # Memory as a production server has it: the tests' 32 MB would measure disk reads.
            server = stack.enter_context(running_postgres({"shared_buffers": "1GB"}))
            url = stack.enter_context(server.database())
        for projects in args.projects:
            with tempfile.TemporaryDirectory() as directory:
                index = open_index(url or f"sqlite:///{Path(directory) / 'search.db'}")
                try:
                    if url:
                        index.remove(index.public_names() | index.in_house_fingerprints().keys())
                    run(index, projects, args.rounds)
                finally:
                    index.close()


if __name__ == "__main__":
    main()
