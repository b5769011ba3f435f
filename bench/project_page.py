"""A warm public project page's first byte (issue 15: target under 20 ms).

A real `packyard serve` (SQLite, filesystem) proxying a static upstream on
127.0.0.1 (`python -m http.server` over a PEP 503 tree) that holds `public-lib`
with `--releases` wheels, each with a README and requirements. The page is
loaded until warm (the upstream page cached, the README rendered and kept),
then fetched `--requests` times, one at a time on a kept-alive connection, and
the time from sending the request to reading the status line and headers is
taken (the first byte). nginx serves the same page's bytes as a static file in
the same run, for the ratio.

    .venv/bin/python bench/project_page.py                 # ~20 s
    .venv/bin/python bench/project_page.py --requests 500 --repeats 5

Prints a Markdown table for bench/RESULTS.md. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replicas import HOST, NGINX_CONF, PACKYARD, Process, clean_environment, serving

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.builders import build_wheel  # noqa: E402 - after the path is set
from tests.e2e.servers import write_static_tree  # noqa: E402

PROJECT = "public-lib"
PAGE = f"/project/{PROJECT}/"
README = "# public-lib\n\nA library.\n\n" + "Some *text* and `code`.\n\n" * 40


def first_bytes(base: str, path: str, requests: int) -> list[float]:
    """Milliseconds to the status line and headers of each of `requests` GETs."""
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            times.append((time.perf_counter() - started) * 1000)
            body = response.read()
            if response.status != 200 or not body:
                raise RuntimeError(f"GET {base}{path}: {response.status}")
    finally:
        connection.close()
    return times


@contextmanager
def upstream(work: Path, releases: int) -> Iterator[str]:
    dists = work / "dists"
    dists.mkdir()
    files = [
        build_wheel(
            dists,
            PROJECT,
            f"1.{number}",
            description=README,
            requires_dist=("attrs>=23", "packaging"),
            summary="A public library",
        )
        for number in range(releases)
    ]
    tree = work / "upstream"
    write_static_tree(tree, files)

    def make(port: int) -> Process:
        argv = [sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(tree)]
        return Process([*argv, str(port)], clean_environment({}), work / "upstream.log")

    with serving(make, "/simple/") as (_, base):
        yield base + "/simple/"


@contextmanager
def packyard(work: Path, index_url: str) -> Iterator[str]:
    data = work / "data"
    subprocess.run([*PACKYARD, "init", "--data-dir", str(data)], check=True, capture_output=True)

    def make(port: int) -> Process:
        argv = [*PACKYARD, "serve", "--data-dir", str(data), "--host", HOST, "--port", str(port)]
        argv += ["--upstream", index_url]
        return Process(argv, clean_environment({}), work / "packyard.log")

    with serving(make, "/healthz") as (_, base):
        yield base


@contextmanager
def nginx(work: Path, page: bytes) -> Iterator[str]:
    root = work / "www"
    root.mkdir()
    (root / "page.html").write_bytes(page)
    state = work / "nginx"
    (state / "tmp").mkdir(parents=True)

    def make(port: int) -> Process:
        conf = NGINX_CONF.format(state=state, host=HOST, port=port, root=root, access_log="off")
        (state / "nginx.conf").write_text(
            conf.replace("access_log off counted;", "access_log off;")
        )
        argv = ["nginx", "-e", "stderr", "-p", str(state), "-c", str(state / "nginx.conf")]
        return Process(argv, clean_environment({}), work / "nginx.log")

    with serving(make, "/page.html") as (_, base):
        yield base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="packyard-bench-page-") as folder:
        work = Path(folder)
        work.chmod(0o755)  # nginx's worker reads the page
        with upstream(work, args.releases) as index_url, packyard(work, index_url) as base:
            # The first view shows a placeholder and the browser's script asks for the
            # details (README, requirements) once; later views carry them inline.
            fetch(base, PAGE)
            fetch(base, f"{PAGE}1.{args.releases - 1}/details")
            page = fetch(base, PAGE)
            if b'class="loading"' in page:
                raise RuntimeError("the page is not warm: its details are still loading")
            first_bytes(base, PAGE, 50)  # warm
            with nginx(work, page) as static:
                ours, theirs = [], []
                for _ in range(args.repeats):
                    ours.append(statistics.median(first_bytes(base, PAGE, args.requests)))
                    theirs.append(
                        statistics.median(first_bytes(static, "/page.html", args.requests))
                    )
                worst = max(first_bytes(base, PAGE, args.requests))
    ours_ms, nginx_ms = statistics.median(ours), statistics.median(theirs)
    print(
        "| page | packyard first byte, median ms | nginx, median ms | ratio | packyard worst ms |"
    )
    print("|---|---:|---:|---:|---:|")
    print(
        f"| `{PAGE}` ({args.releases} releases, warm) | {ours_ms:.2f} | {nginx_ms:.2f} | "
        f"{ours_ms / nginx_ms:.1f}× | {worst:.1f} |"
    )


def fetch(base: str, path: str) -> bytes:
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


if __name__ == "__main__":
    main()
