"""Which uploads must carry an attestation: the requirement against who uploads."""

from __future__ import annotations

import hashlib

import pytest

from packyard.attestations.requirement import UploadAttestations, check_requirement
from packyard.attestations.verify import AttestationVerifier
from packyard.auth.identity import Identity
from packyard.errors import InvalidRequest
from packyard.settings import AttestationRequirement
from tests.attestations_data import GITLAB_CONFIG_REF, GITLAB_REPOSITORY, GITLAB_SDIST, attestation

CI = Identity(
    kind="ci",
    name="gitlab.com/x",
    claims={
        "iss": "https://gitlab.com",
        "project_path": GITLAB_REPOSITORY,
        "ci_config_ref_uri": GITLAB_CONFIG_REF,
    },
)
PERSON = Identity(kind="token", name="alice")
SHA256 = hashlib.sha256(GITLAB_SDIST.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checks() -> UploadAttestations:
    return UploadAttestations(AttestationVerifier(), (), "ci", help_url="https://x.test/help/")


@pytest.mark.parametrize(
    ("requirement", "identity", "refused"),
    [
        ("none", CI, False),
        ("ci", PERSON, False),
        ("ci", CI, True),
        ("all", PERSON, True),
        ("all", CI, True),
    ],
)
def test_a_missing_attestation_is_refused_only_where_required(
    checks: UploadAttestations,
    requirement: AttestationRequirement,
    identity: Identity,
    refused: bool,
) -> None:
    def upload() -> object:
        return checks.check(identity, [], "acme", requirement, GITLAB_SDIST.name, SHA256)

    if refused:
        with pytest.raises(InvalidRequest, match=r"https://x\.test/help/#attestations"):
            upload()
    else:
        assert upload() is None


def test_a_present_attestation_is_verified_whatever_the_requirement(
    checks: UploadAttestations,
) -> None:
    field = f"[{attestation(GITLAB_SDIST)}]"
    assert checks.check(CI, [field], "acme", "none", GITLAB_SDIST.name, SHA256) is not None
    with pytest.raises(InvalidRequest, match="for other bytes"):
        checks.check(CI, [field], "acme", "none", GITLAB_SDIST.name, "0" * 64)
    with pytest.raises(InvalidRequest, match="CI job that uploads them"):
        checks.check(PERSON, [field], "acme", "none", GITLAB_SDIST.name, SHA256)
    with pytest.raises(InvalidRequest, match="may appear once"):
        checks.check(CI, [field, field], "acme", "none", GITLAB_SDIST.name, SHA256)


def test_the_projects_own_requirement_wins_over_the_configured_one(
    checks: UploadAttestations,
) -> None:
    assert checks.effective(None) == "ci"
    assert checks.effective("all") == "all"
    assert check_requirement("none") == "none"
    with pytest.raises(InvalidRequest, match="'none', 'ci' or 'all'"):
        check_requirement("some")
