"""The PEP 740 test vectors copied into `tests/data/attestations` (see SOURCES.md there)."""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).parent / "data" / "attestations"
STAGING_ROOT = VECTORS / "staging_trusted_root.json"

GITLAB_SDIST = VECTORS / "gitlab_oidc_project-0.0.3.tar.gz"
GITLAB_REPOSITORY = "facutuesca/gitlab-oidc-project"
GITLAB_CONFIG_REF = "gitlab.com/facutuesca/gitlab-oidc-project//.gitlab-ci.yml@refs/heads/main"

GITHUB_SDIST = VECTORS / "pypi_attestations-0.0.19.tar.gz"
GITHUB_REPOSITORY = "trailofbits/pypi-attestations"
GITHUB_WORKFLOW_REF = (
    "trailofbits/pypi-attestations/.github/workflows/release.yml@refs/tags/v0.0.19"
)

STAGING_WHEEL = VECTORS / "rfc8785-0.1.2-py3-none-any.whl"


def attestation(dist: Path, kind: str = "publish") -> str:
    """The text of `dist`'s `.{kind}.attestation` file."""
    return (dist.parent / f"{dist.name}.{kind}.attestation").read_text()


def field(*attestations: str) -> str:
    """The `attestations` form field holding `attestations`, as twine sends it."""
    return "[" + ",".join(attestations) + "]"
