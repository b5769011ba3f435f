"""`packyard serve` with `workers = 2` checks what workers build before starting any:
a component that cannot be loaded stops it with the message, not a loop of
workers that die and are started again. The README's configuration, with its
component, runs as written.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import PYTHON, clean_environment, free_port, packyard

pytestmark = pytest.mark.e2e
README = Path(__file__).parents[2] / "README.md"
FAILING_IN_WORKERS = """
import os

from packyard.repository.base import DelegatingRepository


def make_component(chain, settings):
    if os.environ.get("PACKYARD_SETTINGS_JSON"):  # set for the workers only
        raise RuntimeError("this component only fails in a worker")
    return DelegatingRepository(chain)
"""


def serve(
    root: Path, config: str, *, components: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`packyard serve` with `config` in `root`, to its end (or `timeout`)."""
    (root / "packyard.toml").write_text(config)
    data = root / "data"
    env = clean_environment(PYTHONPATH=str(components)) if components else clean_environment()
    assert packyard("init", "--data-dir", str(data), env=env).returncode == 0
    argv = [PYTHON, "-m", "packyard", "serve", "--config", str(root / "packyard.toml")]
    argv += ["--data-dir", str(data), "--port", str(free_port()), "--upstream", "none"]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_a_component_that_cannot_be_loaded_stops_serve_with_its_message(tmp_path: Path) -> None:
    started = time.monotonic()
    result = serve(tmp_path, 'workers = 2\ncomponents = ["no_such_policy:make_component"]\n')
    output = result.stdout + result.stderr

    assert result.returncode == 1
    assert (
        "error: component 'no_such_policy:make_component' cannot be loaded: "
        "No module named 'no_such_policy'"
    ) in output
    assert "Traceback" not in output
    assert "Child process" not in output  # no worker was ever started
    assert time.monotonic() - started < 60


def test_a_component_that_fails_to_build_stops_serve_with_its_message(tmp_path: Path) -> None:
    components = tmp_path / "components"
    components.mkdir()
    (components / "broken_policy.py").write_text(
        "def make_component(chain, settings):\n    raise ValueError('no acme.toml here')\n"
    )

    result = serve(
        tmp_path,
        'workers = 2\ncomponents = ["broken_policy:make_component"]\n',
        components=components,
    )

    assert result.returncode == 1
    assert (
        "error: component 'broken_policy:make_component' failed to build: "
        "ValueError: no acme.toml here"
    ) in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_worker_that_cannot_start_stops_the_server_instead_of_being_restarted(
    tmp_path: Path,
) -> None:
    components = tmp_path / "components"
    components.mkdir()
    (components / "worker_policy.py").write_text(FAILING_IN_WORKERS)

    result = serve(
        tmp_path,
        'workers = 2\ncomponents = ["worker_policy:make_component"]\n',
        components=components,
    )
    output = result.stdout + result.stderr

    assert result.returncode == 1
    assert "error: a worker could not start: component 'worker_policy:make_component'" in output
    # Once per worker; a worker slow to start on a loaded machine may be taken
    # for hung and started again once, never more.
    assert output.count("packyard cannot start:") <= 4, output
    assert "failed to start, stopping the parent process" in output


def readme_block(language: str, containing: str) -> str:
    """The README's fenced `language` block that contains `containing`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [block for block in blocks if containing in block]
    return str(block)


def test_the_readme_configuration_runs_as_written(tmp_path: Path) -> None:
    """The README's `packyard.toml` (its address and data directory moved into the
    test's, its upstreams replaced by none: no test reaches pypi.org) and its
    component module, put where the README says."""
    config = readme_block("toml", "components = ")
    module = readme_block("python", "def make_component")
    components = tmp_path / "components"
    components.mkdir()
    (components / "acme_policy.py").write_text(module)
    port = free_port()
    config = re.sub(r"(?m)^port = .*$", f"port = {port}", config)
    config = re.sub(r"(?m)^host = .*$", 'host = "127.0.0.1"', config)
    config = re.sub(r"(?m)^data_dir = .*$", f'data_dir = "{tmp_path / "data"}"', config)
    (tmp_path / "packyard.toml").write_text(config)
    env = clean_environment(PYTHONPATH=str(components))
    assert packyard("init", "--config", str(tmp_path / "packyard.toml"), env=env).returncode == 0
    argv = [PYTHON, "-m", "packyard", "serve", "--config", str(tmp_path / "packyard.toml")]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*argv, "--upstream", "none"], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/readyz"), log.read_text()
        assert "workers = 2" in config
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text()


def wait_for(url: str, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False
