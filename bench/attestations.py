"""Verification time of an upload's PEP 740 attestations, in-process (issue 13).

The issue's target: verifying the attestations of an upload costs under 50 ms. This
times `AttestationVerifier.verify(...)` (`src/packyard/attestations/verify.py`), the
whole check an upload with an `attestations` field runs, on the real test vectors of
`tests/data/attestations`, against the public-good trust root bundled with `sigstore`
(what a default configuration uses; nothing is fetched):

- `gitlab`: `gitlab_oidc_project-0.0.3.tar.gz` with its publish attestation
  (a GitLab CI publisher);
- `github`: `pypi_attestations-0.0.19.tar.gz` with its publish and SLSA provenance
  attestations in one field (a GitHub Actions publisher), as twine sends both.

Each case is verified `--repeats` times after `--warm-up` calls, one call per sample
(`time.perf_counter`); the median, p95 and maximum are printed, and the wall and CPU
time of the first call of a fresh process (the trust root read, the verifier built,
the modules' first use) once. The sha256 of the file is not included: an upload
computes it in any case. No peer is compared: no private index verifies
attestations (PyPI does, as a service).

The end-to-end cost of an upload with attestations is not measured here: an upload
with them must authenticate with a CI job's ID token (trusted publishing), whose
issuer, keys and claims this offline bench has no way to sign for these vectors'
real jobs; the verification above is the only work an upload adds for them besides
storing two text columns.

    .venv/bin/python bench/attestations.py                 # ~20 s
    .venv/bin/python bench/attestations.py --repeats 1000

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.attestations_data import (  # noqa: E402 - after the path is set
    GITHUB_REPOSITORY,
    GITHUB_SDIST,
    GITHUB_WORKFLOW_REF,
    GITLAB_CONFIG_REF,
    GITLAB_REPOSITORY,
    GITLAB_SDIST,
    attestation,
    field,
)

from packyard.attestations.publisher import GITHUB_ACTIONS_ISSUER, publisher_of  # noqa: E402
from packyard.attestations.verify import AttestationVerifier, Verified  # noqa: E402
from packyard.auth.identity import Identity  # noqa: E402

TARGET_MS = 50.0


@dataclass(frozen=True)
class Case:
    """One upload: its file, its `attestations` field and the CI job that sends it."""

    name: str
    dist: Path
    field: str
    job: Identity

    @property
    def label(self) -> str:
        count = len(json.loads(self.field))
        return f"{self.dist.name} ({count} attestation{'s' if count > 1 else ''})"


def cases() -> dict[str, Case]:
    gitlab = Identity(
        kind="ci",
        name="gitlab",
        claims={
            "iss": "https://gitlab.com",
            "project_path": GITLAB_REPOSITORY,
            "ci_config_ref_uri": GITLAB_CONFIG_REF,
        },
    )
    github = Identity(
        kind="ci",
        name="github",
        claims={
            "iss": GITHUB_ACTIONS_ISSUER,
            "repository": GITHUB_REPOSITORY,
            "job_workflow_ref": GITHUB_WORKFLOW_REF,
        },
    )
    both = field(attestation(GITHUB_SDIST, "publish"), attestation(GITHUB_SDIST, "slsa"))
    return {
        "gitlab": Case("gitlab", GITLAB_SDIST, field(attestation(GITLAB_SDIST)), gitlab),
        "github": Case("github", GITHUB_SDIST, both, github),
    }


def verifier_call(verifier: AttestationVerifier, case: Case) -> Callable[[], Verified]:
    """One upload's verification, as the upload route calls it (the publisher from the
    job's claims, then `verify`)."""
    sha256 = hashlib.sha256(case.dist.read_bytes()).hexdigest()

    def call() -> Verified:
        return verifier.verify(case.field, case.dist.name, sha256, publisher_of(case.job, ()))

    return call


def samples_ms(call: Callable[[], object], warm_up: int, repeats: int) -> list[float]:
    for _ in range(warm_up):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def first_call(name: str) -> None:
    """In this (fresh) process: build a verifier and verify `name` once; print
    `wall_ms cpu_ms` of the whole, imports of this module excluded."""
    case = cases()[name]
    wall, cpu = time.perf_counter(), time.process_time()
    verifier_call(AttestationVerifier(), case)()
    print(f"{(time.perf_counter() - wall) * 1000:.1f} {(time.process_time() - cpu) * 1000:.1f}")


def fresh_first_call(name: str) -> tuple[float, float]:
    """`first_call(name)` in a new interpreter: (wall ms, CPU ms)."""
    result = subprocess.run(
        [sys.executable, __file__, "--first-call", name],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = result.stdout.split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--first-call", choices=("gitlab", "github"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        first_call(args.first_call)
        return
    verifier = AttestationVerifier()
    lines = [
        f"`AttestationVerifier.verify`, in-process, public-good trust root; "
        f"{args.repeats} calls after {args.warm_up} of warm-up; load average "
        f"{os.getloadavg()[0]:.2f} at start",
        "",
        "| upload | median ms | p95 ms | max ms | first call of a process: wall / CPU ms "
        f"| < {TARGET_MS:.0f} ms? |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, case in cases().items():
        times = samples_ms(verifier_call(verifier, case), args.warm_up, args.repeats)
        median, p95 = statistics.median(times), percentile(times, 0.95)
        wall, cpu = fresh_first_call(name)
        met = "yes" if p95 < TARGET_MS else "**no**"
        lines.append(
            f"| {case.label} | {median:.2f} | {p95:.2f} | {max(times):.2f} "
            f"| {wall:.0f} / {cpu:.0f} | {met} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
