"""Prometheus metrics, exposed at `GET /metrics` in the text format (DESIGN §5).

Two kinds, by cost:

- **Per request** (every `/simple/` hit, ~13,000/s on one core): requests by
  route family and status, and a latency histogram per family. prometheus_client's
  `Counter.inc` plus `Histogram.observe` cost several microseconds (a lock and a
  Python loop over the buckets), so `RequestStats` keeps plain ints and floats
  (one event loop per process: no lock) and a custom collector exports them.
- **Per download and per upstream request**: prometheus_client's own types
  (`Counter`, `Histogram`); at those rates their cost does not show.

Several workers (`--workers N`): `prepare_multiprocess` (run once by the parent,
before the workers start) points `PROMETHEUS_MULTIPROC_DIR` at a fresh
`<data_dir>/metrics/<parent pid>/`. prometheus_client then keeps its metrics in
files there, and each worker writes its `RequestStats` to `requests-<pid>.json`
in the same directory every second (and on shutdown); a scrape, answered by
any one worker, sums every process's files. Directories of servers that are no
longer running are removed at the next start.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from packyard.settings import Settings

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Seconds. A warm page takes tens of microseconds; an upstream miss, up to seconds.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
           2.5, 5.0, 10.0)  # fmt: skip
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_SECONDS = 1.0
_REQUESTS_FILE = "requests-{pid}.json"


class RequestStats:
    """Counts by (family, status) and a latency histogram by family, in plain Python.

    `observe` is the hot path: two dict lookups, a `bisect` and three additions.
    A histogram row is `[count per bucket..., count above the last bucket, sum]`.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.histograms: dict[str, list[float]] = {}

    def observe(self, family: str, status: int, seconds: float) -> None:
        key = (family, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        row = self.histograms.get(family)
        if row is None:
            row = self.histograms[family] = [0.0] * (len(BUCKETS) + 2)
        row[bisect_left(BUCKETS, seconds)] += 1
        row[-1] += seconds

    def to_json(self) -> dict[str, object]:
        """A copy that another thread may take while the loop goes on (dict/list copies
        are single operations under the GIL)."""
        counts = dict(self.counts)
        histograms = {family: list(row) for family, row in dict(self.histograms).items()}
        return {
            "counts": [[family, status, n] for (family, status), n in counts.items()],
            "histograms": histograms,
        }

    def merge_json(self, data: Mapping[str, object]) -> None:
        """Add the stats of `to_json()` output (of another process) to these."""
        for family, status, n in data.get("counts", []):  # type: ignore[attr-defined]
            key = (str(family), int(status))
            self.counts[key] = self.counts.get(key, 0) + int(n)
        for family, row in dict(data.get("histograms", {})).items():  # type: ignore[call-overload]
            mine = self.histograms.setdefault(str(family), [0.0] * (len(BUCKETS) + 2))
            for index, value in enumerate(row[: len(mine)]):
                mine[index] += float(value)


class RequestCollector(Collector):
    """Exports `RequestStats`: `packyard_http_requests_total` and the duration histogram."""

    def __init__(self, stats: Iterable[RequestStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        total = RequestStats()
        for stats in self._stats:
            total.merge_json(stats.to_json())
        requests = CounterMetricFamily(
            "packyard_http_requests", "HTTP requests by route family and status.",
            labels=["family", "status"],
        )  # fmt: skip
        for (family, status), n in sorted(total.counts.items()):
            requests.add_metric([family, str(status)], n)
        yield requests
        duration = HistogramMetricFamily(
            "packyard_http_request_duration_seconds",
            "Time from the request to the end of the response, by route family.",
            labels=["family"],
        )
        for family, row in sorted(total.histograms.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip((*BUCKETS, float("inf")), row[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((_bound(bound), cumulative))
            duration.add_metric([family], buckets, row[-1])
        yield duration


class Metrics:
    """Every metric of one application, and the `/metrics` text.

    In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR` set) a daemon thread writes
    this process's `RequestStats` every `FLUSH_SECONDS`; `close()` stops it
    after a last write.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        directory = env.get(MULTIPROC_VARIABLE)
        self.multiprocess_dir = Path(directory) if directory else None
        self.requests = RequestStats()
        self.registry = CollectorRegistry()
        # In multiprocess mode the values live in files, not in a registry.
        registry = None if self.multiprocess_dir else self.registry
        self.downloads = Counter(
            "packyard_downloads", "Files sent; cache hit = from our store or cache, "
            "miss = streamed from an upstream.", ["cache"], registry=registry,
        )  # fmt: skip
        self.download_bytes = Counter(
            "packyard_download_bytes", "Bytes of files sent.", ["cache"], registry=registry
        )
        self.advisory_downloads = Counter(
            "packyard_advisory_downloads", "Distribution files affected by known "
            "vulnerabilities, by the page's source (an upstream's label or local) and the "
            "policy applied: warn, yank and hide are files sent, deny are downloads "
            "refused (403), accepted are files whose every advisory an admin accepted.",
            ["source", "policy"], registry=registry,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            "packyard_upstream_request_duration_seconds",
            "Time until an upstream's response headers arrive.",
            ["upstream"], buckets=UPSTREAM_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upstream_responses = Counter(
            "packyard_upstream_responses", "Upstream HTTP responses by status.",
            ["upstream", "status"], registry=registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "packyard_upstream_errors", "Upstream failures that reached the chain, by kind.",
            ["upstream", "kind"], registry=registry,
        )  # fmt: skip
        self.password_checks = Counter(
            "packyard_password_checks", "Password sign-ins by outcome: ok and wrong (argon2 "
            "ran), remembered (a recent failure, refused from memory), throttled (429), "
            "busy (503: every check slot taken).", ["outcome"], registry=registry,
        )  # fmt: skip
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.multiprocess_dir is None:
            self.registry.register(RequestCollector([self.requests]))
        else:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
            self._flusher.start()

    def password_check(self, outcome: str) -> None:
        """Count one password sign-in (`auth.authenticate.PasswordCheckObserver`)."""
        self.password_checks.labels(outcome).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self.flush()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        registry.register(RequestCollector(_read_requests(self.multiprocess_dir)))
        return generate_latest(registry)

    def flush(self) -> None:
        """Write this process's request stats to its file (multiprocess mode only)."""
        if self.multiprocess_dir is None:
            return
        target = self.multiprocess_dir / _REQUESTS_FILE.format(pid=os.getpid())
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(self.requests.to_json()))
        partial.replace(target)  # atomic: a scrape never reads half a file

    def close(self) -> None:
        if self._flusher is not None:
            self._stop.set()
            self._flusher.join()
            self._flusher = None
            self.flush()

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()


def prepare_multiprocess(settings: Settings, environ: dict[str, str] | None = None) -> None:
    """Before several workers start: a fresh metrics directory for this server run.

    Sets `PROMETHEUS_MULTIPROC_DIR` (inherited by the workers) to
    `<data_dir>/metrics/<this pid>/`, and removes the directories of earlier
    runs whose process is gone. Does nothing with one worker, with metrics
    off, or when the operator set the variable already.
    """
    env = os.environ if environ is None else environ
    if settings.workers < 2 or not settings.telemetry.metrics or env.get(MULTIPROC_VARIABLE):
        return
    base = settings.data_dir / "metrics"
    if base.is_dir():
        for old in base.iterdir():
            if old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
    directory = base / str(os.getpid())
    directory.mkdir(parents=True, exist_ok=True)
    env[MULTIPROC_VARIABLE] = str(directory)


def _read_requests(directory: Path) -> list[RequestStats]:
    found = []
    for path in sorted(directory.glob(_REQUESTS_FILE.format(pid="*"))):
        stats = RequestStats()
        try:
            stats.merge_json(json.loads(path.read_text()))
        except (OSError, ValueError):  # a file being replaced: the next scrape reads it
            continue
        found.append(stats)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
