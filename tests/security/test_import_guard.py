"""`packyard import` goes through the upload's name guard.

An operator imports a directory of wheels someone handed over. Among them: a
wheel named like a public project of the upstream (it would shadow the
public one for every user: dependency confusion), a look-alike of it, and a
standard-library name. Each is refused with the very message an upload of it
gets, and reported; the public name is imported once an admin allowed it
with `packyard name allow`. The upstream is a static index on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.servers import (
    PackyardProcess,
    StaticIndexProcess,
    clean_environment,
    init_store,
    packyard,
)
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e


@dataclass
class Setup:
    root: Path
    upstream: StaticIndexProcess
    dists: Path

    def import_(self, data: Path) -> tuple[int, list[str], str]:
        """Run `packyard import` on `dists` with the upstream; (exit status,
        refused lines, summary line)."""
        result = packyard(
            "import", "--data-dir", str(data), "--upstream", self.upstream.index_url,
            str(self.dists),
        )  # fmt: skip
        refused = [line for line in result.stderr.splitlines() if line.startswith("refused: ")]
        return result.returncode, refused, result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("import-guard")
    public = root / "public"
    public.mkdir()
    published = build_wheel(public, "public-lib", "1.0")
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, "public-lib", "6.6.6")  # the public name itself
    build_wheel(dists, "pub1ic-lib", "1.0")  # a look-alike (l read as 1)
    build_wheel(dists, "asyncio", "9.0")  # a standard-library module
    build_wheel(dists, "acme-core", "1.0")  # a fine in-house name
    with StaticIndexProcess(root / "upstream", [published]) as upstream:
        yield Setup(root, upstream, dists)


def upload_messages(setup: Setup, data: Path, wheels: list[Path]) -> dict[str, str]:
    """What uploads of `wheels` to a server on `data` (same upstream) are answered."""
    env = clean_environment()
    assert packyard("user", "add", "alice", "--data-dir", str(data), env=env).returncode == 0
    created = packyard("token", "create", "alice", "--data-dir", str(data), env=env)
    token = created.stdout.strip().splitlines()[-1]
    messages = {}
    with PackyardProcess(data, upstreams=[setup.upstream.index_url]) as server:
        for wheel in wheels:
            content_type, body = encode(
                twine_form(wheel), (wheel.name, wheel.read_bytes(), "application/octet-stream")
            )
            response = httpx.post(
                server.url + "/legacy/",
                content=body,
                headers={"content-type": content_type.decode()},
                auth=("__token__", token),
                timeout=60,
            )
            assert response.status_code == 400, response.text
            messages[wheel.name] = response.text.strip()
    return messages


def test_public_and_standard_library_names_are_refused_with_the_uploads_messages(
    setup: Setup, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    init_store(data)
    status, refused, summary = setup.import_(data)

    assert status == 1
    assert summary == "1 added, 0 already present, 3 refused"
    by_file = {line.split(": ", 2)[1]: line.split(": ", 2)[2] for line in refused}
    assert set(by_file) == {
        "public_lib-6.6.6-py3-none-any.whl",
        "pub1ic_lib-1.0-py3-none-any.whl",
        "asyncio-9.0-py3-none-any.whl",
    }
    assert "already used by a public project" in by_file["public_lib-6.6.6-py3-none-any.whl"]
    assert "packyard name allow public-lib" in by_file["public_lib-6.6.6-py3-none-any.whl"]
    assert "too similar to 'public-lib'" in by_file["pub1ic_lib-1.0-py3-none-any.whl"]
    assert "Standard Library" in by_file["asyncio-9.0-py3-none-any.whl"]
    # The very messages an upload of the same files gets.
    assert upload_messages(setup, data, [setup.dists / name for name in by_file]) == by_file


def test_an_allowed_public_name_is_imported(setup: Setup, tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_store(data)
    allowed = packyard(
        "name", "allow", "public-lib", "--reason", "our fork", "--data-dir", str(data)
    )
    assert allowed.returncode == 0, allowed.stderr

    status, refused, summary = setup.import_(data)

    assert summary == "2 added, 0 already present, 2 refused"
    assert status == 1
    assert not any("public_lib-6.6.6" in line for line in refused)
    # The allow-list is for public names; a standard-library name stays refused.
    assert any("asyncio-9.0" in line for line in refused)
