"""Instructions per warm page request, before and after a change: a CPU-independent measure.

This machine's wall-clock throughput spreads ±20-40% from run to run (bench/RESULTS.md), too
much to judge a 5% target. Valgrind's callgrind counts the instructions a `packyard serve`
process executes for a fixed number of warm `/simple/<project>/` requests: the same count for
the same code, whatever else the machine does. Each commit runs from its own `git archive`, on
the embedded defaults, with the same 20 in-house projects; instrumentation is switched on
(`callgrind_control -i on`) only after start-up and 200 warm-up requests.

    .venv/bin/python bench/instructions.py --before 7b1bccd --after HEAD [--requests 2000] [--auth]

`--auth`: with `[auth] read_requires_auth = true`, every request carrying a token as pip
sends one (`__token__:TOKEN`, Basic).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.builders import build_wheel  # noqa: E402 - after the path is set
from tests.e2e.servers import free_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
PROJECTS = 20
WARM_UP = 200


def source_of(commit: str, into: Path) -> Path:
    """The `src` of `commit`, unpacked under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def instructions_per_request(src: Path, work: Path, requests: int, *, auth: bool) -> float:
    """Instructions callgrind counts per warm page request of `packyard serve` from `src`."""
    dists, data = work / "dists", work / "data"
    dists.mkdir(parents=True)
    for number in range(PROJECTS):
        build_wheel(dists, f"acme-count{number}", "1.0")
    env = {**os.environ, "PYTHONPATH": str(src), "PIP_CONFIG_FILE": os.devnull}
    headers = {}
    if auth:
        config = work / "packyard.toml"
        config.write_text("[auth]\nread_requires_auth = true\n")
        env["PACKYARD_CONFIG"] = str(config)
    imported = subprocess.run(
        [PYTHON, "-m", "packyard", "import", "--data-dir", str(data), str(dists)],
        env={**env, "PACKYARD_UPSTREAM": "none"},
        capture_output=True,
        text=True,
        check=False,
    )
    if imported.returncode != 0:
        raise RuntimeError(f"import failed: {imported.stdout}{imported.stderr}")
    if auth:
        headers["Authorization"] = basic_token(env, data)
    port = free_port()
    out = work / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    serve = ["-m", "packyard", "serve", "--data-dir", str(data), "--port", str(port)]
    server = subprocess.Popen(
        [*valgrind, PYTHON, *serve, "--upstream", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        paths = [f"/simple/acme-count{n % PROJECTS}/" for n in range(requests)]
        with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
            for path in paths[:WARM_UP]:
                client.get(path)
            callgrind("on", server.pid)
            for path in paths:
                if client.get(path).status_code != 200:
                    raise RuntimeError(f"{path} did not answer 200")
            callgrind("off", server.pid)
    finally:
        server.terminate()
        server.wait(300)
    return total_instructions(out) / requests


def basic_token(env: dict[str, str], data: Path) -> str:
    """The Authorization value of a new user's token, as pip sends `__token__:TOKEN`."""
    state = ["--data-dir", str(data)]
    packyard = [PYTHON, "-m", "packyard"]
    subprocess.run([*packyard, "user", "add", "bench", *state], env=env, check=True)
    created = subprocess.run(
        [*packyard, "token", "create", "bench", *state],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 600  # start-up under valgrind takes a while
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not start")


def callgrind(state: str, pid: int) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


def total_instructions(out: Path) -> int:
    """The instructions counted while instrumentation was on (the file's largest total)."""
    totals = [
        int(line.split()[1])
        for line in out.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))
    ]
    if not totals or max(totals) == 0:
        raise RuntimeError(f"no instructions counted in {out}")
    return max(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit (or ref) before the change")
    parser.add_argument("--after", default="HEAD", help="commit (or ref) after it")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--auth", action="store_true", help="read_requires_auth, with a token")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packyard-instructions-"))
    try:
        counts = {}
        for label, commit in (("before", args.before), ("after", args.after)):
            src = source_of(commit, work / label / "tree")
            counts[label] = instructions_per_request(
                src, work / label, args.requests, auth=args.auth
            )
            print(f"{label} ({commit}): {counts[label]:,.0f} instructions per request", flush=True)
        print(f"after / before: {counts['after'] / counts['before']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
