"""Verification of upload attestations with the real PEP 740 vectors, offline: accepted for
the CI job that signed them, refused with a message for anything else."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from packyard.attestations.publisher import GITHUB_ACTIONS_ISSUER, publisher_of
from packyard.attestations.verify import MAX_FIELD_BYTES, AttestationVerifier, Verified
from packyard.auth.identity import Identity
from packyard.errors import ConfigurationError, InvalidRequest
from packyard.settings import OidcIssuerSettings
from tests.attestations_data import (
    GITHUB_REPOSITORY,
    GITHUB_SDIST,
    GITHUB_WORKFLOW_REF,
    GITLAB_CONFIG_REF,
    GITLAB_REPOSITORY,
    GITLAB_SDIST,
    STAGING_ROOT,
    STAGING_WHEEL,
    attestation,
    field,
)

PUBLISH = "https://docs.pypi.org/attestations/publish/v1"
SLSA = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def verifier() -> AttestationVerifier:
    return AttestationVerifier()


def gitlab_job(**claims: Any) -> Identity:
    values = {
        "iss": "https://gitlab.com",
        "project_path": GITLAB_REPOSITORY,
        "ci_config_ref_uri": GITLAB_CONFIG_REF,
    }
    return Identity(kind="ci", name="gitlab.com/x", claims=values | claims)


def github_job(**claims: Any) -> Identity:
    values = {
        "iss": GITHUB_ACTIONS_ISSUER,
        "repository": GITHUB_REPOSITORY,
        "job_workflow_ref": GITHUB_WORKFLOW_REF,
    }
    return Identity(kind="ci", name="github/x", claims=values | claims)


def check(
    verifier: AttestationVerifier,
    dist: Path,
    text: str,
    job: Identity,
    issuers: tuple[OidcIssuerSettings, ...] = (),
    *,
    sha256: str | None = None,
) -> Verified:
    digest = sha256 or hashlib.sha256(dist.read_bytes()).hexdigest()
    return verifier.verify(text, dist.name, digest, publisher_of(job, issuers))


def test_a_gitlab_attestation_verifies_for_its_job(verifier: AttestationVerifier) -> None:
    verified = check(verifier, GITLAB_SDIST, field(attestation(GITLAB_SDIST)), gitlab_job())

    assert verified.predicate_types == (PUBLISH,)
    provenance = json.loads(verified.provenance)
    [bundle] = provenance["attestation_bundles"]
    assert provenance["version"] == 1
    assert bundle["publisher"] == {
        "kind": "GitLab",
        "repository": GITLAB_REPOSITORY,
        "workflow_filepath": ".gitlab-ci.yml",
        "environment": None,
    }
    assert len(bundle["attestations"]) == 1
    summary = json.loads(verified.summary)
    assert summary["ref"] == "refs/heads/main"
    assert summary["commit"] == "72f7c63b75eb55ea80864962f0e645c93414da34"


def test_a_self_managed_issuer_is_checked_by_the_host_the_configuration_names(
    verifier: AttestationVerifier,
) -> None:
    """The token comes from the URL packyard reaches the CI by; certificates name
    `sigstore_issuer`, whose host the repository URL is built on."""
    local = OidcIssuerSettings(
        issuer="http://127.0.0.1:9", audience="packyard", sigstore_issuer="https://gitlab.com"
    )
    job = gitlab_job(iss="http://127.0.0.1:9")
    assert check(verifier, GITLAB_SDIST, field(attestation(GITLAB_SDIST)), job, (local,))

    elsewhere = local.model_copy(update={"sigstore_issuer": "https://gitlab.example.org"})
    with pytest.raises(
        InvalidRequest,
        match=re.escape("issuer 'https://gitlab.com', not 'https://gitlab.example.org'"),
    ):
        check(verifier, GITLAB_SDIST, field(attestation(GITLAB_SDIST)), job, (elsewhere,))


def test_a_github_publish_and_slsa_attestation_verify_together(
    verifier: AttestationVerifier,
) -> None:
    both = field(attestation(GITHUB_SDIST), attestation(GITHUB_SDIST, "slsa"))
    verified = check(verifier, GITHUB_SDIST, both, github_job())

    assert verified.predicate_types == (PUBLISH, SLSA)
    publisher = json.loads(verified.provenance)["attestation_bundles"][0]["publisher"]
    assert publisher["kind"] == "GitHub"
    assert publisher["workflow"] == "release.yml"


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            gitlab_job(project_path="facutuesca/other"),
            "repository 'https://gitlab.com/facutuesca/gitlab-oidc-project', not 'https://gitlab.com/facutuesca/other'",
        ),
        (
            gitlab_job(
                ci_config_ref_uri=GITLAB_CONFIG_REF.replace(".gitlab-ci.yml", "release.yml")
            ),
            "CI file",
        ),
        (gitlab_job(iss="https://gitlab.example.org"), "issuer 'https://gitlab.com'"),
    ],
)
def test_another_identity_is_refused_naming_what_differs(
    verifier: AttestationVerifier, job: Identity, message: str
) -> None:
    with pytest.raises(InvalidRequest, match="does not match the publisher") as refused:
        check(verifier, GITLAB_SDIST, field(attestation(GITLAB_SDIST)), job)
    assert message in refused.value.message


def test_an_attestation_of_other_bytes_or_another_file_is_refused(
    verifier: AttestationVerifier,
) -> None:
    text = field(attestation(GITLAB_SDIST))
    with pytest.raises(InvalidRequest, match="is for other bytes: it signs sha256 "):
        check(verifier, GITLAB_SDIST, text, gitlab_job(), sha256="0" * 64)
    digest = hashlib.sha256(GITLAB_SDIST.read_bytes()).hexdigest()
    publisher = publisher_of(gitlab_job(), ())
    with pytest.raises(
        InvalidRequest, match=re.escape("not for 'gitlab_oidc_project-0.0.4.tar.gz'")
    ):
        verifier.verify(text, "gitlab_oidc_project-0.0.4.tar.gz", digest, publisher)


def test_a_bundle_of_another_sigstore_instance_is_refused(
    verifier: AttestationVerifier,
) -> None:
    job = github_job()
    with pytest.raises(InvalidRequest, match=r"trust root configured here .*public-good"):
        check(verifier, STAGING_WHEEL, field(attestation(STAGING_WHEEL)), job)


def test_a_configured_trust_root_is_the_one_used(tmp_path: Path) -> None:
    """With the staging root, the staging bundle passes the trust root (and then meets
    the publisher check: it was signed by a person, not a CI job); the public-good
    bundles no longer verify."""
    staging = AttestationVerifier(STAGING_ROOT)
    with pytest.raises(InvalidRequest, match="does not match the publisher"):
        check(staging, STAGING_WHEEL, field(attestation(STAGING_WHEEL)), github_job())
    with pytest.raises(InvalidRequest, match=re.escape(STAGING_ROOT.name)):
        check(staging, GITLAB_SDIST, field(attestation(GITLAB_SDIST)), gitlab_job())


def test_an_unreadable_trust_root_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "root.json"
    broken.write_text('{"mediaType": "nonsense"}')
    for path in (broken, tmp_path / "missing.json"):
        with pytest.raises(ConfigurationError, match="trusted_root"):
            AttestationVerifier(path)


def test_two_attestations_of_one_predicate_type_are_refused(verifier: AttestationVerifier) -> None:
    twice = field(attestation(GITLAB_SDIST), attestation(GITLAB_SDIST))
    with pytest.raises(InvalidRequest, match="More than one attestation of predicate type"):
        check(verifier, GITLAB_SDIST, twice, gitlab_job())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not JSON"),
        ("{}", "non-empty JSON array"),
        ("[]", "non-empty JSON array"),
        ('[{"version": 1}]', "Attestation 1 is malformed"),
        ('[{"version": 2, "verification_material": {}, "envelope": {}}]', "malformed"),
        ("[" + " " * MAX_FIELD_BYTES + "]", "at most 262144"),
    ],
)
def test_a_malformed_field_is_refused(
    verifier: AttestationVerifier, text: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check(verifier, GITLAB_SDIST, text, gitlab_job())


def test_a_tampered_signature_is_refused(verifier: AttestationVerifier) -> None:
    raw = json.loads(attestation(GITLAB_SDIST))
    signature = raw["envelope"]["signature"]
    raw["envelope"]["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidRequest, match="does not verify"):
        check(verifier, GITLAB_SDIST, field(json.dumps(raw)), gitlab_job())


def test_only_a_ci_job_with_repository_claims_is_a_publisher() -> None:
    user = Identity(kind="token", name="alice")
    with pytest.raises(InvalidRequest, match="CI job that uploads them"):
        publisher_of(user, ())
    with pytest.raises(InvalidRequest, match="ci_config_ref_uri"):
        publisher_of(gitlab_job(ci_config_ref_uri=None), ())
    with pytest.raises(InvalidRequest, match="job_workflow_ref"):
        publisher_of(github_job(job_workflow_ref="x"), ())


def test_a_signing_time_outside_the_certificates_life_is_refused(
    verifier: AttestationVerifier,
) -> None:
    """Fulcio certificates live ten minutes: a log entry claiming a signing time a day
    later (an expired certificate) is refused, whatever else is right."""
    raw = json.loads(attestation(GITLAB_SDIST))
    entry = raw["verification_material"]["transparency_entries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 86_400)
    with pytest.raises(InvalidRequest, match="cert is not valid at validation time"):
        check(verifier, GITLAB_SDIST, field(json.dumps(raw)), gitlab_job())
