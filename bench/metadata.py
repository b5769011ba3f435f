"""Benchmark: the PEP 658 `.metadata` of the largest wheel on this machine, through a proxy.

    .venv/bin/python bench/metadata.py [--wheel PATH] [--runs 3]

The wheel (by default the largest in pip's find-links, `/opt/wheels`: the
PyPI CPU build of PyTorch, about 190 MB) is served by
`tests/e2e/counting_upstream.py`, a static PEP 503 tree on 127.0.0.1 that
honours byte ranges and counts the file bytes it sends, without `.metadata`
files or sizes. Each run starts a proxy with an empty data directory, warms
the project page, then measures the first `.metadata` request (cold: read
from the upstream) and a second one (warm: from the store). The upstream's
counter gives the bytes read for the cold request.

Compared with simple-repository-server 0.10 when the shared harness has
installed it (`/tmp/bench-venvs/simple-repository-server`): it downloads the
whole wheel to extract METADATA. Prints a Markdown table (medians) for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.servers import PYTHON, PackyardProcess, ServerProcess, free_port  # noqa: E402

# Installed by the shared harness (../shared/bench/install.sh).
SRS = Path("/tmp/bench-venvs/simple-repository-server/bin/simple-repository-server")  # noqa: S108


@dataclass(frozen=True)
class Run:
    upstream_bytes: int
    cold: float
    warm: float


def largest_wheel() -> Path:
    """The largest wheel in pip's find-links directories (PIP_FIND_LINKS, else /opt/wheels)."""
    folders = os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()
    wheels = [path for folder in folders for path in Path(folder).glob("*.whl")]
    if not wheels:
        raise SystemExit(f"no wheel found in {folders}; pass --wheel")
    return max(wheels, key=lambda path: path.stat().st_size)


def write_tree(root: Path, wheel: Path) -> str:
    """A PEP 503 tree linking to `wheel` (a symlink, not a copy); returns the project name."""
    project = canonicalize_name(parse_wheel_filename(wheel.name)[0])
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (root / "files").mkdir(parents=True)
    (root / "files" / wheel.name).symlink_to(wheel)
    page = root / "simple" / project / "index.html"
    page.parent.mkdir(parents=True)
    anchor = f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>'
    page.write_text(f"<!DOCTYPE html><html><body>\n{anchor}\n</body></html>\n")
    (root / "simple" / "index.html").write_text(f'<a href="{project}/">{project}</a>\n')
    return project


def counting_upstream(root: Path) -> ServerProcess:
    port = free_port()
    script = ROOT / "tests" / "e2e" / "counting_upstream.py"
    argv = [PYTHON, str(script), str(root), str(port)]
    return ServerProcess(argv, port, root.parent / "upstream.log", "/simple/")


def sent(upstream: ServerProcess) -> int:
    return int(httpx.get(upstream.url + "/_sent").json()["bytes"])


def measure(
    upstream: ServerProcess, page_url: str, metadata_url: str, expected: bytes | None
) -> Run:
    """Warm the page, then time a cold and a warm `.metadata` request."""
    with httpx.Client(timeout=600) as client:
        client.get(page_url).raise_for_status()
        before = sent(upstream)
        start = time.perf_counter()
        cold = client.get(metadata_url)
        cold_time = time.perf_counter() - start
        cold.raise_for_status()
        upstream_bytes = sent(upstream) - before
        start = time.perf_counter()
        client.get(metadata_url).raise_for_status()
        warm_time = time.perf_counter() - start
    if expected is not None and cold.content != expected:
        raise SystemExit(f"{metadata_url} is not the wheel's METADATA")
    return Run(upstream_bytes, cold_time, warm_time)


def packyard_run(work: Path, upstream: ServerProcess, project: str, wheel: Path) -> Run:
    with PackyardProcess(work / "data", upstreams=[upstream.url + "/simple/"]) as site:
        page = f"{site.index_url}{project}/"
        url = f"{site.url}/files/{project}/{wheel.name}.metadata"
        return measure(upstream, page, url, wheel_metadata(wheel))


def srs_run(work: Path, upstream: ServerProcess, project: str, wheel: Path) -> Run:
    port = free_port()
    argv = [str(SRS), "--host", "127.0.0.1", "--port", str(port), upstream.url + "/simple/"]
    with ServerProcess(argv, port, work / "srs.log", "/simple/") as srs:
        page = f"{srs.url}/simple/{project}/"
        url = f"{srs.url}/resources/{project}/{wheel.name}.metadata"
        return measure(upstream, page, url, None)  # SRS re-encodes METADATA as text


def wheel_metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


def median_run(runs: list[Run]) -> Run:
    return Run(
        int(statistics.median(run.upstream_bytes for run in runs)),
        statistics.median(run.cold for run in runs),
        statistics.median(run.warm for run in runs),
    )


def row(name: str, run: Run) -> str:
    return (
        f"| {name} | {run.upstream_bytes:,} | {run.cold * 1000:.0f} ms | {run.warm * 1000:.1f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    wheel: Path = (args.wheel or largest_wheel()).resolve()
    servers: list[tuple[str, Callable[[Path, ServerProcess, str, Path], Run]]] = [
        ("packyard", packyard_run)
    ]
    if SRS.exists():
        servers.append(("simple-repository-server 0.10", srs_run))
    with TemporaryDirectory(prefix="packyard-bench-metadata-") as folder:
        work = Path(folder)
        project = write_tree(work / "tree", wheel)
        lines = [
            f"`.metadata` of {wheel.name} ({wheel.stat().st_size:,} bytes), "
            f"upstream on 127.0.0.1 with byte ranges, median of {args.runs} runs",
            "",
            "| server | bytes read from the upstream | first `.metadata` | again |",
            "|---|---:|---:|---:|",
        ]
        with counting_upstream(work / "tree") as upstream:
            for name, run in servers:
                runs = []
                for index in range(args.runs):
                    run_dir = work / f"{name.split()[0]}-{index}"
                    run_dir.mkdir()
                    runs.append(run(run_dir, upstream, project, wheel))
                lines.append(row(name, median_run(runs)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
