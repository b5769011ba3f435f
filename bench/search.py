"""Search benchmark: 10,000 indexed projects, median query time (target < 50 ms).

    .venv/bin/python bench/search.py [--projects 10000] [--rounds 20] [--url sqlite:///x.db]

Builds an index of synthetic projects (a tenth in-house, with summaries,
authors, classifiers and dependencies), then times typical queries through
`SearchIndex.search` (the parse and the SQL, as a page view runs them), and
prints a Markdown table. The default index is a SQLite file in a temporary
directory, as `<data_dir>/search.db` is in production.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from packyard.model import SOURCE_LOCAL
from packyard.search.documents import SearchDocument
from packyard.search.index import SearchIndex, open_index
from packyard.search.query import parse_query

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
            )
        )
    return result


def timed(index: SearchIndex, text: str, rounds: int) -> tuple[float, int]:
    """Median milliseconds of `rounds` parses and searches of `text`, and the hit count."""
    samples = []
    total = 0
    for _ in range(rounds):
        started = time.perf_counter()
        total = index.search(parse_query(text), limit=20).total
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", help="index URL (default: SQLite in a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        index = open_index(args.url or f"sqlite:///{Path(directory) / 'search.db'}")
        started = time.perf_counter()
        index.upsert(documents(args.projects, random.Random(1)))
        built = time.perf_counter() - started
        print(f"{args.projects} projects indexed in {built:.1f} s ({index.engine.dialect.name})\n")
        print("| query | hits | median ms |")
        print("|---|---:|---:|")
        medians = []
        for text in QUERIES:
            median, hits = timed(index, text, args.rounds)
            medians.append(median)
            print(f"| `{text}` | {hits} | {median:.1f} |")
        print(f"| **all queries (median of medians)** | | **{statistics.median(medians):.1f}** |")
        index.close()


if __name__ == "__main__":
    main()
