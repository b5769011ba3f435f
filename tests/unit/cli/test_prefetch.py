"""`packyard prefetch`'s pip: the command line it runs, and the pips it refuses.

With the pip that `python3 -m venv` bundles it is run end to end in
tests/e2e/test_prefetch_bundled_pip.py; a pip too old to have `--report`
cannot be installed offline, so its refusal is checked here.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import click
import pytest

from packyard.cli.prefetch import MIN_PIP, check_pip, pip_argv


def argv(python_version: str | None = None, *platforms: str) -> list[str]:
    return pip_argv(
        "http://127.0.0.1:1/simple/",
        Path("/tmp/report.json"),
        (),
        ("acme",),
        python_version,
        platforms,
        Path("/tmp/target"),
    )


def test_a_foreign_platform_gets_a_target_that_older_pips_insist_on() -> None:
    foreign = argv("3.12", "manylinux2014_x86_64")
    assert foreign[foreign.index("--target") + 1] == "/tmp/target"
    assert "--only-binary=:all:" in foreign
    assert foreign[-5:] == [
        "--python-version",
        "3.12",
        "--platform",
        "manylinux2014_x86_64",
        "acme",
    ]
    assert "--target" not in argv()  # this platform: pip installs nothing anyway


def test_this_environments_pip_is_accepted() -> None:
    check_pip()


@pytest.mark.parametrize("version", ["21.3.1", "22.1"])
def test_a_pip_without_report_is_refused_with_the_upgrade_command(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: version if name == "pip" else real(name)
    )
    with pytest.raises(click.ClickException) as refused:
        check_pip()
    message = refused.value.message
    assert f"needs pip {MIN_PIP} or newer" in message
    assert f"has pip {version}" in message
    assert f"-m pip install --upgrade 'pip>={MIN_PIP}'" in message
