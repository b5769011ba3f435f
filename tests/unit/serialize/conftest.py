"""A project page that exercises every field the writers know, including hostile text."""

from datetime import UTC, datetime

import pytest

from packyard.model import ACTIVE, DistFile, ProjectDetail, ProjectStatus

SHA_SDIST = "a" * 64
SHA_WHEEL = "b" * 64
SHA_METADATA = "c" * 64
HOSTILE = '"><script>alert(1)</script>'


def sample_project(status: ProjectStatus = ACTIVE) -> ProjectDetail:
    """Four files: a plain sdist, a wheel with everything, a hostile one, an odd one."""
    return ProjectDetail(
        name="demo-pkg",
        files=(
            DistFile(
                "demo_pkg-1.0.tar.gz",
                hashes={"sha256": SHA_SDIST, "md5": "d" * 32},
                requires_python=">=3.9,<4",
                size=1234,
                upload_time=datetime(2025, 3, 4, 5, 6, 7, 891, tzinfo=UTC),
            ),
            DistFile(
                "demo_pkg-1.1-py3-none-any.whl",
                hashes={"sha256": SHA_WHEEL},
                core_metadata={"sha256": SHA_METADATA},
                yanked="broken <b>build</b> & more",
                size=99,
                provenance="https://example.test/integrity/demo-pkg/1.1/provenance",
                gpg_sig=False,
            ),
            DistFile(
                f"demo_pkg-2.0{HOSTILE}.tar.gz",
                hashes={"sha256": SHA_SDIST},
                requires_python=f">=3{HOSTILE}",
                yanked="",
                core_metadata=True,
                size=1,
            ),
            DistFile("demo_pkg-3.0.0+local-py3-none-any.whl", hashes={}, size=5),
        ),
        versions=("0.9", "1.0"),
        status=status,
    )


@pytest.fixture
def project() -> ProjectDetail:
    return sample_project()
