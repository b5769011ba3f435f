"""`packyard prefetch --platform/--python-version` with the pip `python3 -m venv` bundles.

packyard installed the way the README says (`python3 -m venv`, then pip) has
the pip that `ensurepip` bundles with that Python (23.2 with Python 3.11),
which refuses a foreign platform without `--target`, even for a dry run. The
venv here is made by `python -m venv` from this test's Python, offline (the
bundled pip is a wheel inside the standard library); packyard and its
dependencies come from this test's environment through a `.pth` file placed
after the venv's own packages, so that the venv's pip is the one found. The
index is a packyard on 127.0.0.1: nothing reaches PyPI.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.builders import build_wheel
from tests.e2e.servers import PackyardProcess, clean_environment

pytestmark = pytest.mark.e2e


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=300,
        check=False,
    )


def venv_with_bundled_pip(root: Path) -> Path:
    """A venv made by `python -m venv` (pip from ensurepip) that can import packyard;
    its python."""
    made = run(sys.executable, "-m", "venv", root / "venv")
    assert made.returncode == 0, made.stderr
    python = root / "venv" / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    ours = sysconfig.get_paths()["purelib"]
    # Processed after the venv's own packages are on the path: its pip comes first.
    (Path(purelib.stdout.strip()) / "zz-packyard-under-test.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    return python


def test_prefetch_for_another_platform_works_with_the_pip_venv_bundles(tmp_path: Path) -> None:
    python = venv_with_bundled_pip(tmp_path)
    bundled = run(python, "-c", "import ensurepip; print(ensurepip.version())").stdout.strip()
    found = run(python, "-c", "import importlib.metadata as m; print(m.version('pip'))")
    assert found.stdout.strip() == bundled  # the venv's own pip, not this environment's
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "target-app", "1.0", requires_dist=("target-dep>=1",))
    build_wheel(dists, "target-dep", "1.0")
    server = PackyardProcess(tmp_path / "data")
    assert server.import_dir(dists).returncode == 0
    with server:
        result = run(
            python, "-m", "packyard", "prefetch", "--index-url", server.index_url,
            "--platform", "manylinux2014_x86_64", "--python-version", "3.12", "target-app",
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 distributions are in the server's cache" in result.stdout
