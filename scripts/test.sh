#!/usr/bin/env bash
# Install everything the tests need, then run every check: lint, types, tests.
# This is the README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite drives for real.
# postgresql: the tests start their own throwaway server from its binaries (tests/postgres.py).
# nginx: in front of packyard under a URL prefix (tests/e2e/test_proxy_prefix.py).
# chromium: the browser tests drive Debian's Chromium through Playwright (never `playwright install`).
# slapd: an OpenLDAP directory of the tests' own, run from its binary (tests/slapd.py); a system
# slapd the package may start is not used.
APT_PACKAGES=(git postgresql chromium nginx slapd)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A project-local virtual environment, installed from PyPI only: the machine's
# own pip configuration must not leak other indexes into what we test.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -n 2 --dist loadfile "$@"
