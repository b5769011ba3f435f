"""The PyPA advisory database snapshot the tests and benchmarks use.

A copy, unchanged, of `../shared/advisories/pypa-advisory-database` (commit
3ccb612 of github.com/pypa/advisory-database, CC BY 4.0: its LICENSE is beside
it; what it holds: `pypa-advisory-database.README.md`). It lives in the
repository because CI checks out the project alone, without `../shared`.
"""

from __future__ import annotations

from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent / "data" / "pypa-advisory-database" / "vulns"
