"""The trusted publisher of a CI upload, and the Sigstore policy that checks a
signing certificate against it.

The publisher comes from the CI ID token that authenticated the upload (its
claims were verified by `auth/oidc.py`): the repository and the CI file of
the job. An attestation verifies only if its certificate was issued to that
same job's identity: same OIDC issuer, same source repository, and a Build
Config URI naming that CI file at the commit or ref the certificate says.

The issuer's host comes from the configuration (`[[auth.oidc]] issuer`, or
`sigstore_issuer` when certificates name it differently), never from a list
of well-known hosts: a self-managed GitLab is the normal case here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import sigstore.errors
from cryptography import x509
from cryptography.hazmat import asn1

from packyard.auth.identity import Identity
from packyard.errors import InvalidRequest
from packyard.settings import OidcIssuerSettings

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

# Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md).
ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
ISSUER = "1.3.6.1.4.1.57264.1.8"
SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
SOURCE_REPOSITORY_DIGEST = "1.3.6.1.4.1.57264.1.13"
SOURCE_REPOSITORY_REF = "1.3.6.1.4.1.57264.1.14"
BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"
RUN_INVOCATION_URI = "1.3.6.1.4.1.57264.1.21"

PublisherKind = Literal["GitLab", "GitHub"]


class PublisherMismatch(sigstore.errors.VerificationError):
    """The certificate is valid but was issued to another identity than the publisher."""


@dataclass(frozen=True, slots=True)
class TrustedPublisher:
    """The CI job an upload's attestations must come from.

    `workflow` is GitLab's CI file path (`.gitlab-ci.yml`) or GitHub's
    workflow file name (`release.yml`); `repository_url` is the repository on
    the issuer's host, as certificates name it.
    """

    kind: PublisherKind
    issuer: str
    repository: str
    repository_url: str
    workflow: str
    environment: str | None = None

    @property
    def build_config_prefix(self) -> str:
        """The Build Config URI of this publisher's CI file, up to the `@commit-or-ref`."""
        if self.kind == "GitLab":
            return f"{self.repository_url}//{self.workflow}"
        return f"{self.repository_url}/.github/workflows/{self.workflow}"

    def as_pep740(self) -> dict[str, object]:
        """The provenance object's `publisher` (PEP 740, as PyPI writes it)."""
        workflow_key = "workflow_filepath" if self.kind == "GitLab" else "workflow"
        return {
            "kind": self.kind,
            "repository": self.repository,
            workflow_key: self.workflow,
            "environment": self.environment,
        }

    def verify(self, cert: x509.Certificate) -> None:
        """Sigstore's `VerificationPolicy`: pass if `cert` was issued to this publisher.

        Raises:
            PublisherMismatch: the issuer, the repository or the CI file differ;
                the message names what the certificate says and what was expected.
        """
        claims = certificate_claims(cert)
        issuer = claims.get(ISSUER) or claims.get(ISSUER_V1)
        if issuer != self.issuer:
            raise PublisherMismatch(
                f"it was signed by a job of issuer {issuer!r}, not {self.issuer!r} "
                "(the issuer of the CI token that uploads it)"
            )
        repository = claims.get(SOURCE_REPOSITORY_URI)
        if repository != self.repository_url:
            raise PublisherMismatch(
                f"it was signed in repository {repository!r}, not {self.repository_url!r} "
                "(the repository of the CI token that uploads it)"
            )
        build_config = claims.get(BUILD_CONFIG_URI, "")
        suffixes = {claims.get(SOURCE_REPOSITORY_DIGEST), claims.get(SOURCE_REPOSITORY_REF)}
        expected = {f"{self.build_config_prefix}@{suffix}" for suffix in suffixes if suffix}
        if build_config not in expected:
            raise PublisherMismatch(
                f"it was signed by CI file {build_config!r}, not {self.workflow!r} of "
                f"{self.repository} (the CI file of the job that uploads it)"
            )


def certificate_claims(cert: x509.Certificate) -> dict[str, str]:
    """Fulcio's string extensions of `cert` (dotted OID -> value); others are skipped."""
    claims: dict[str, str] = {}
    for extension in cert.extensions:
        oid = extension.oid.dotted_string
        if not oid.startswith("1.3.6.1.4.1.57264.1."):
            continue
        value = extension.value
        if not isinstance(value, x509.UnrecognizedExtension):
            continue
        if oid == ISSUER_V1:  # the deprecated extension holds raw bytes, not DER
            claims[oid] = value.value.decode("utf-8", "replace")
            continue
        try:
            claims[oid] = asn1.decode_der(str, value.value)
        except ValueError:
            continue
    return claims


def publisher_of(identity: Identity, issuers: tuple[OidcIssuerSettings, ...]) -> TrustedPublisher:
    """The trusted publisher a CI identity's verified claims name.

    Raises:
        InvalidRequest: `identity` is not a CI job (attestations are verified
            against the job that uploads them), or its token lacks the claims
            that name a repository and a CI file (GitLab's `project_path` and
            `ci_config_ref_uri`, GitHub's `repository` and `job_workflow_ref`).
    """
    if identity.kind != "ci":
        raise InvalidRequest(
            "Attestations are verified against the CI job that uploads them: publish "
            "with the job's ID token (trusted publishing), not a password or API token."
        )
    claims = identity.claims
    token_issuer = str(claims.get("iss", ""))
    settings = next((s for s in issuers if s.issuer == token_issuer), None)
    issuer = (settings.sigstore_issuer if settings else None) or token_issuer
    environment = _text(claims.get("environment"))
    if "project_path" in claims:
        repository = _text(claims.get("project_path"))
        config = _text(claims.get("ci_config_ref_uri"))
        workflow = _between(config, "//", "@")
        if not repository or not workflow:
            raise _missing_claims("project_path and ci_config_ref_uri")
        host = urlsplit(issuer).netloc
        return TrustedPublisher(
            "GitLab", issuer, repository, f"https://{host}/{repository}", workflow, environment
        )
    repository = _text(claims.get("repository"))
    workflow_ref = _text(claims.get("job_workflow_ref"))
    workflow = _between(workflow_ref, "/.github/workflows/", "@")
    if not repository or not workflow:
        raise _missing_claims(
            "repository and job_workflow_ref (GitHub) or project_path and "
            "ci_config_ref_uri (GitLab)"
        )
    host = "github.com" if issuer == GITHUB_ACTIONS_ISSUER else urlsplit(issuer).netloc
    return TrustedPublisher(
        "GitHub", issuer, repository, f"https://{host}/{repository}", workflow, environment
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _between(text: str | None, start: str, end: str) -> str | None:
    """The part of `text` after the first `start` and before the last `end`."""
    if not text or start not in text:
        return None
    rest = text.split(start, 1)[1]
    return rest.rsplit(end, 1)[0] if end in rest else None


def _missing_claims(names: str) -> InvalidRequest:
    return InvalidRequest(
        f"The CI token that uploads these attestations has no {names} claims: "
        "they name the publisher the attestations are checked against."
    )
