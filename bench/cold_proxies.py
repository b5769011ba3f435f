"""Cold caching proxies: one `pip`/`uv` dry-run resolution through each, on an empty cache.

The benchmark of the caching proxy issue: a cold `pip install --dry-run` and
`uv pip install --dry-run` of the shared harness's requirements (15
requirements, a closure of 42 projects) through packyard, proxpi,
simple-repository-server and devpi, all proxying the same upstream, and the
same two clients pointed straight at that upstream. The upstream is nginx
serving a static PEP 503 tree: the harness's `$BENCH_WORK/data/www` when it
is there, else the local mirror that pip's configuration names
(`file:///.../simple`), which has the same layout.

Each repeat starts every proxy afresh, with an empty state directory, for
each client run: only the client's wall time is measured, from a server that
is up (its readiness path answers) but has never seen a project page. The
clients run in an emptied environment (fresh HOME, `PIP_CONFIG_FILE=/dev/null`,
`UV_NO_CONFIG=1`, no cache) and only count as OK if they exit 0 and print
"Would install". Servers are pinned to CPU 0 and clients to CPU 1, as in the
harness. Tools come from the harness's `install.sh` venvs (`$BENCH_VENVS`);
packyard from this checkout's `.venv`. The harness itself is not imported.

Bounds: every process has a timeout (server start 120 s, client 180 s, setup
commands 120 s); everything listens on and talks to 127.0.0.1 only; every
process started is ended by its process group (SIGTERM, then SIGKILL), also
on errors and Ctrl-C.

    .venv/bin/python bench/cold_proxies.py               # 3 repeats, about 3 minutes
    .venv/bin/python bench/cold_proxies.py --repeats 5 --skip devpi

Prints a Markdown table (median seconds per client, runs OK of runs made).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO.parent / "shared" / "bench"
TEMP = Path(tempfile.gettempdir())
START_TIMEOUT = 120.0
CLIENT_TIMEOUT = 180.0
SETUP_TIMEOUT = 120.0
DEVPI_PASSWORD = "bench"  # noqa: S105 (root of a throwaway devpi on 127.0.0.1)
TOOLS = ("pip", "uv")
DIRECT = "upstream (direct)"

NGINX_CONF = """worker_processes 1;
daemon off;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {state}/tmp;
    server {{
        listen {host}:{port};
        root {www};
        index index.html;
    }}
}}
"""


@dataclass(frozen=True)
class Settings:
    venvs: Path
    www: Path
    requirements: Path
    work: Path
    server_cpus: str
    client_cpus: str


@dataclass(frozen=True)
class Launch:
    """How to run one server: its command, where its index is, when it is ready.

    `before` runs to completion before the server starts, `after` once it is ready
    (both with the server's environment); neither is timed.
    """

    argv: list[str]
    simple: str
    ready: str
    env: dict[str, str] = field(default_factory=dict)
    before: list[list[str]] = field(default_factory=list)
    after: list[list[str]] = field(default_factory=list)


Launcher = Callable[[Settings, Path, int, str], Launch]
"""`(settings, empty state directory, port, upstream /simple/ URL) -> Launch`."""


def packyard(settings: Settings, state: Path, port: int, upstream: str) -> Launch:
    argv = [str(REPO / ".venv/bin/packyard"), "serve", "--data-dir", str(state / "data")]
    argv += ["--host", HOST, "--port", str(port), "--upstream", upstream]
    return Launch(argv, "/simple/", "/healthz")


def proxpi(settings: Settings, state: Path, port: int, upstream: str) -> Launch:
    """As the harness runs it (gunicorn as in proxpi's Docker image), on a fresh cache."""
    argv = [str(settings.venvs / "proxpi/bin/gunicorn"), "--preload", "--bind", f"{HOST}:{port}"]
    argv += ["--threads", "2", "proxpi.server:app"]
    env = {"PROXPI_INDEX_URL": upstream, "PROXPI_CACHE_DIR": str(state / "cache")}
    return Launch(argv, "/index/", "/health", env)


def simple_repository_server(settings: Settings, state: Path, port: int, upstream: str) -> Launch:
    """The upstream URL as its one repository (it keeps no cache on disk)."""
    program = settings.venvs / "simple-repository-server/bin/simple-repository-server"
    argv = [str(program), "--host", HOST, "--port", str(port), upstream]
    # Any path that does not reach the upstream: a 404 means it is up.
    return Launch(argv, "/simple/", "/ready-probe")


def devpi(settings: Settings, state: Path, port: int, upstream: str) -> Launch:
    """devpi-server with a mirror index `root/mirror` whose `mirror_url` is the upstream.

    Initialised without devpi's default `root/pypi` (which mirrors pypi.org), so
    nothing can ever be asked of the internet; the mirror is made with the
    devpi client once the server is up.
    """
    bin_dir = settings.venvs / "devpi/bin"
    server_dir = str(state / "server")
    init = [str(bin_dir / "devpi-init"), "--serverdir", server_dir, "--no-root-pypi"]
    argv = [str(bin_dir / "devpi-server"), "--serverdir", server_dir, "--host", HOST]
    client = str(bin_dir / "devpi")
    after = [
        [client, "use", f"http://{HOST}:{port}"],
        [client, "login", "root", "--password", DEVPI_PASSWORD],
        [client, "index", "-c", "root/mirror", "type=mirror", f"mirror_url={upstream}"],
    ]
    return Launch(
        [*argv, "--port", str(port)],
        "/root/mirror/+simple/",
        "/+api",
        {"DEVPI_CLIENTDIR": str(state / "client")},
        before=[[*init, "--root-passwd", DEVPI_PASSWORD]],
        after=after,
    )


PROXIES: dict[str, Launcher] = {
    "packyard": packyard,
    "proxpi": proxpi,
    "simple-repository-server": simple_repository_server,
    "devpi": devpi,
}
VERSIONS = {  # server -> (python of its venv, distribution)
    "packyard": ("", "packyard"),
    "proxpi": ("proxpi", "proxpi"),
    "simple-repository-server": ("simple-repository-server", "simple-repository-server"),
    "devpi": ("devpi", "devpi-server"),
}


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment without proxies or any tool's settings, HOME in the state dir."""
    prefixes = ("PIP_", "UV_", "PACKYARD_", "DEVPI_", "PROXPI_")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith(prefixes)
    }
    env.update({"HOME": str(home), "NO_PROXY": "*", "no_proxy": "*"})
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env.update(extra)
    return env


class Server:
    """A server process in its own process group, ended by that group."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.argv = argv
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    def wait_ready(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Return once `url` answers with a status below 500.

        Raises:
            RuntimeError: the process exited, or `timeout` seconds passed.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited early; see {self.log}")
            if (status := http_status(url)) is not None and status < 500:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.argv[0]} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to it after 10 s; also kills leftover children."""
        group = self.process.pid  # start_new_session: the group is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # workers the leader left behind


def http_status(url: str) -> int | None:
    """The status of a GET of `url` (no proxies, no redirects followed), None if no answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
    try:
        with opener.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def run_setup(argv: list[str], env: dict[str, str], log: Path) -> None:
    """Run a setup command to completion, its output into `log`.

    Raises:
        subprocess.CalledProcessError, subprocess.TimeoutExpired: it failed.
    """
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=SETUP_TIMEOUT,
            check=True,
        )


def pinned(cpus: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


@contextlib.contextmanager
def running(
    settings: Settings, name: str, launcher: Launcher, upstream: str
) -> Iterator[tuple[str, Server]]:
    """Start `name` on a fresh, empty state directory; yield its index URL; stop it."""
    state = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=settings.work / "state"))
    port = free_port()
    launch = launcher(settings, state, port, upstream)
    env = server_environment(state, launch.env)
    log = settings.work / "logs" / f"{name}.log"
    for argv in launch.before:
        run_setup(argv, env, log)
    server = Server(pinned(settings.server_cpus, launch.argv), env, state, log)
    try:
        server.wait_ready(f"http://{HOST}:{port}{launch.ready}")
        for argv in launch.after:
            run_setup(argv, env, log)
        yield f"http://{HOST}:{port}{launch.simple}", server
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


# --- clients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    detail: str


def client_argv(settings: Settings, tool: str, index_url: str) -> list[str]:
    client = settings.venvs / "client/bin"
    requirements = ["--index-url", index_url, "-r", str(settings.requirements)]
    if tool == "pip":
        argv = [str(client / "python"), "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        return [*argv, "--no-cache-dir", *requirements]
    target = settings.venvs / "target/bin/python"
    argv = [str(client / "uv"), "pip", "install", "--dry-run", "--no-cache"]
    return [*argv, "--python", str(target), *requirements]


def client_environment(home: Path) -> dict[str, str]:
    """Only PATH and a fresh HOME, no configuration files, no proxies (as the harness)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": str(home / "uv-cache"),
        "NO_PROXY": "*",
        "LC_ALL": "C.UTF-8",
    }


def run_client(settings: Settings, tool: str, index_url: str) -> Outcome:
    """One timed client run; OK if it exits 0 and says what it would install."""
    home = Path(tempfile.mkdtemp(prefix=f"client-{tool}-", dir=settings.work))
    argv = pinned(settings.client_cpus, client_argv(settings, tool, index_url))
    started = time.perf_counter()
    try:
        result = subprocess.run(
            argv,
            env=client_environment(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, CLIENT_TIMEOUT, f"timed out after {CLIENT_TIMEOUT:.0f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    said = re.search(r"^Would install (.*)$", output, re.MULTILINE)
    if result.returncode == 0 and said:
        return Outcome(True, seconds, said[1][:80])
    last = output.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
    return Outcome(False, seconds, last[0][:200])


# --- the run ---------------------------------------------------------------------------


def measure(settings: Settings, names: Sequence[str], repeats: int) -> dict[str, list[Outcome]]:
    """Per `server/tool`: one outcome per repeat; the upstream (nginx) runs for the whole."""
    results: dict[str, list[Outcome]] = {}
    with running(settings, "nginx", nginx, "") as (upstream_simple, _):
        for repeat in range(1, repeats + 1):
            for name in (DIRECT, *names):
                for tool in TOOLS:
                    outcome = one_run(settings, name, tool, upstream_simple)
                    results.setdefault(f"{name}/{tool}", []).append(outcome)
                    state = "ok" if outcome.ok else f"FAILED: {outcome.detail}"
                    log(f"repeat {repeat} {name} {tool}: {outcome.seconds:.2f} s {state}")
    return results


def one_run(settings: Settings, name: str, tool: str, upstream: str) -> Outcome:
    if name == DIRECT:
        return run_client(settings, tool, upstream)
    try:
        with running(settings, name, PROXIES[name], upstream) as (index_url, _):
            return run_client(settings, tool, index_url)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        return Outcome(False, 0.0, f"start: {error}")


def nginx(settings: Settings, state: Path, port: int, upstream: str) -> Launch:
    """The upstream: nginx over the static tree, with a generated configuration."""
    (state / "tmp").mkdir()
    conf = NGINX_CONF.format(state=state, host=HOST, port=port, www=settings.www)
    (state / "nginx.conf").write_text(conf)
    argv = ["nginx", "-e", str(state / "error.log"), "-c", str(state / "nginx.conf")]
    return Launch([*argv, "-p", str(state)], "/simple/", "/simple/")


def table(results: dict[str, list[Outcome]], names: Sequence[str], versions: dict[str, str]) -> str:
    lines = ["| server | pip s | uv s | ok |", "|---|---|---|---|"]
    for name in (DIRECT, *names):
        cells, oks = [], []
        for tool in TOOLS:
            outcomes = results.get(f"{name}/{tool}", [])
            good = [o.seconds for o in outcomes if o.ok]
            cells.append(f"{statistics.median(good):.2f}" if good else "-")
            oks.append(f"{tool} {len(good)}/{len(outcomes)}")
        label = f"{name} {versions[name]}" if name in versions else name
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {', '.join(oks)} |")
    failures = [f"- {key}: {o.detail}" for key, outs in results.items() for o in outs if not o.ok]
    return "\n".join(lines + (["", *failures] if failures else []))


def versions(settings: Settings, names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        venv, dist = VERSIONS[name]
        python = settings.venvs / venv / "bin/python" if venv else REPO / ".venv/bin/python"
        script = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
        result = subprocess.run(
            [str(python), "-c", script, dist], capture_output=True, text=True, timeout=60
        )
        found[name] = result.stdout.strip() or "?"
    return found


def default_www() -> Path:
    """The harness's static tree if a run left it, else the mirror in pip's configuration.

    Raises:
        SystemExit: neither is there.
    """
    work = Path(os.environ.get("BENCH_WORK") or TEMP / "bench-run")
    if (work / "data/www/simple").is_dir():
        return work / "data/www"
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    for url in re.findall(r"file://(/[^'\s]*?)/simple/?'", listing):
        if Path(url, "simple").is_dir():
            return Path(url)
    raise SystemExit("no static tree found: pass --www (the folder that holds simple/)")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args() -> tuple[Settings, list[str], int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="proxies to leave out, comma-separated")
    venvs = os.environ.get("BENCH_VENVS") or str(TEMP / "bench-venvs")
    parser.add_argument("--venvs", type=Path, default=Path(venvs))
    parser.add_argument("--www", type=Path, help="the folder that holds simple/ (the upstream)")
    parser.add_argument("--requirements", type=Path, default=HARNESS / "requirements.txt")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    args = parser.parse_args()
    skipped = {name.strip() for name in args.skip.split(",") if name.strip()}
    if unknown := skipped - set(PROXIES):
        parser.error(f"unknown proxies: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="packyard-cold-"))
    settings = Settings(
        venvs=args.venvs,
        www=(args.www or default_www()).resolve(),
        requirements=args.requirements.resolve(),
        work=work,
        server_cpus=args.server_cpus,
        client_cpus=args.client_cpus,
    )
    return settings, [name for name in PROXIES if name not in skipped], args.repeats


def main() -> None:
    settings, names, repeats = parse_args()
    for folder in ("state", "logs"):
        (settings.work / folder).mkdir()
    # SIGTERM unwinds like Ctrl-C, so every `running` block stops its server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    log(f"upstream tree {settings.www}; work and logs in {settings.work}")
    try:
        found = versions(settings, names)
        results = measure(settings, names, repeats)
    finally:
        shutil.rmtree(settings.work / "state", ignore_errors=True)
    print(f"Cold dry-run resolution of {settings.requirements.name}, median of {repeats} runs;")
    print(f"each proxy started on an empty cache for each run; upstream nginx over {settings.www}.")
    print()
    print(table(results, names, found))


if __name__ == "__main__":
    main()
