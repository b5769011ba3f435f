"""Real server processes for end-to-end tests, all on 127.0.0.1.

`PackyardProcess` runs `python -m packyard serve` as its own process;
`StaticIndexProcess` serves a PEP 503 tree with the standard library's
`http.server` (an upstream with HTML only, no JSON, no `.metadata`).
"""

from __future__ import annotations

import html
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from hashlib import sha256
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

PYTHON = sys.executable
BIN = Path(PYTHON).parent
START_TIMEOUT_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment without pip/uv settings that could point clients elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_", "PACKYARD_")) and not key.lower().endswith("_proxy")
    }
    env.update({"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "NO_PROXY": "*"})
    env.update(extra)
    return env


class ServerProcess:
    """A process that serves HTTP on 127.0.0.1:`port`, stopped on exit.

    `environment` is added to the cleaned environment the process starts with.
    """

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        log: Path,
        ready_path: str,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.environment = dict(environment or {})
        self.port = port
        self.log = log
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environment(**self.environment),
            )
        # Generous: on a loaded 2-core CI machine a replica may take long to start.
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv} exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.argv} did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def packyard(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `packyard` command to completion, capturing its output; `input` is its stdin."""
    return subprocess.run(
        [PYTHON, "-m", "packyard", *args],
        capture_output=True,
        text=True,
        input=input,
        env=env or clean_environment(),
        timeout=120,
        check=False,
    )


def init_store(data_dir: Path, env: dict[str, str] | None = None) -> None:
    """`packyard init`: create the store in `data_dir` (or the database `env` names),
    as an operator must before any command but `serve` acts on it."""
    result = packyard("init", "--data-dir", str(data_dir), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


class PackyardProcess(ServerProcess):
    """`packyard serve` on its own data directory, with the given upstreams.

    `database_url` (e.g. the `database_url` fixture's) replaces the SQLite database
    in the data directory, for the server and for `import_dir`, through
    `PACKYARD_DATABASE_URL`.
    """

    def __init__(
        self,
        data_dir: Path,
        upstreams: Iterable[str] = ("none",),
        database_url: str | None = None,
    ) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "packyard", "serve", "--data-dir", str(data_dir), "--port", str(port)]
        for upstream in upstreams:
            argv += ["--upstream", upstream]
        environment = {"PACKYARD_DATABASE_URL": database_url} if database_url else {}
        log = data_dir.parent / f"packyard-{port}.log"
        super().__init__(argv, port, log, "/healthz", environment)
        self.data_dir = data_dir

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"

    def init(self) -> None:
        """Create this server's store (`packyard init`) unless it has one."""
        shared = "PACKYARD_DATABASE_URL" in self.environment
        if shared or not (self.data_dir / "packyard.db").exists():
            init_store(self.data_dir, env=clean_environment(**self.environment))

    def import_dir(
        self, directory: Path, upstreams: Sequence[str] = ("none",)
    ) -> subprocess.CompletedProcess[str]:
        """`packyard import` into this server's store; the name guard asks `upstreams`
        (by default none: fixtures are imported before their upstream runs)."""
        upstream_args = [arg for upstream in upstreams for arg in ("--upstream", upstream)]
        self.init()
        return packyard(
            "import",
            "--data-dir",
            str(self.data_dir),
            *upstream_args,
            str(directory),
            env=clean_environment(**self.environment),
        )


class StaticIndexProcess(ServerProcess):
    """A static PEP 503 HTML tree of `files`, served by `python -m http.server`."""

    def __init__(self, root: Path, files: Iterable[Path]) -> None:
        write_static_tree(root, files)
        port = free_port()
        argv = [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root)]
        super().__init__([*argv, str(port)], port, root.parent / f"static-{port}.log", "/simple/")

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"


def write_static_tree(root: Path, files: Iterable[Path]) -> None:
    """`simple/<project>/index.html` linking `../../files/<file>#sha256=...`."""
    by_project: dict[str, list[Path]] = {}
    (root / "files").mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.name.endswith(".whl"):
            name = parse_wheel_filename(path.name)[0]
        else:
            name = parse_sdist_filename(path.name)[0]
        by_project.setdefault(canonicalize_name(name), []).append(path)
        (root / "files" / path.name).write_bytes(path.read_bytes())
    links = []
    for project, paths in sorted(by_project.items()):
        anchors = "".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256='
            f'{sha256(p.read_bytes()).hexdigest()}">{html.escape(p.name)}</a>\n'
            for p in paths
        )
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n")
        links.append(f'<a href="{project}/">{project}</a>')
    (root / "simple" / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
    )
