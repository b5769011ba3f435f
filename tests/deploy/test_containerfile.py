"""The Containerfile installs packyard as the README says and runs it unprivileged.

The image cannot be built here (no container registry to pull the base image
from), so these tests read the Containerfile: its install command against the
README's, its runtime user, and the values the Kubernetes manifests rely on.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", path.read_text())
    found: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def runtime() -> list[Instruction]:
    return stages(CONTAINERFILE)[-1]


def last(instructions: list[Instruction], keyword: str) -> str:
    return [i.arguments for i in instructions if i.keyword == keyword][-1]


def environment(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                name, _, value = word.partition("=")
                values[name] = value
    return values


def commands(shell: str) -> list[list[str]]:
    return [shlex.split(part) for part in shell.split("&&")]


def readme_install() -> list[list[str]]:
    """The README's set-up line, command by command:
    `python3 -m venv V && V/bin/pip install . && V/bin/packyard serve`."""
    readme = (ROOT / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    return commands(line)


def test_the_builder_installs_packyard_with_the_readmes_command() -> None:
    readme = readme_install()
    builder = stages(CONTAINERFILE)[0]
    (run,) = [i.arguments for i in builder if i.keyword == "RUN"]
    image = commands(run)
    # The same two steps: a virtual environment, then its pip installs this project.
    venv = image[0][-1]
    assert image[0][:-1] == readme[0][:-1] == ["python3", "-m", "venv"]
    assert image[1][:2] == [f"{venv}/bin/pip", "install"]
    assert readme[1] == [f"{readme[0][-1]}/bin/pip", "install", "."]
    # ... with the PostgreSQL driver, an extra the project declares.
    assert image[1][2:] == [".[postgresql]"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "postgresql" in extras["optional-dependencies"]
    # The runtime stage copies that environment and finds `packyard` in it.
    assert f"--from=builder {venv} {venv}" in [i.arguments for i in runtime()]
    assert environment(runtime())["PATH"].startswith(f"{venv}/bin:")


def test_the_image_runs_packyard_serve_unprivileged_on_every_address() -> None:
    instructions = runtime()
    user = last(instructions, "USER").split(":")[0]
    assert user not in ("root", "0")
    assert json.loads(last(instructions, "ENTRYPOINT")) + json.loads(last(instructions, "CMD")) == [
        "packyard",
        "serve",
    ]
    env = environment(instructions)
    assert env["PACKYARD_HOST"] == "0.0.0.0"
    assert last(instructions, "EXPOSE") == env["PACKYARD_PORT"] == "8000"
    assert json.loads(last(instructions, "VOLUME")) == [env["PACKYARD_DATA_DIR"]]


def test_the_manifests_run_the_images_user_and_data_directory() -> None:
    env = environment(runtime())
    uid = int(last(runtime(), "USER").split(":")[0])
    base = ROOT / "deploy" / "kubernetes" / "base"
    deployment = next(yaml.safe_load_all((base / "index.yaml").read_text()))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    mounts = {mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    assert env["PACKYARD_DATA_DIR"] in mounts
