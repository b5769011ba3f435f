"""Which uploads must carry a verified attestation, and checking an upload's.

`[attestations] require` sets it for every project; an admin overrides it per
project (`projects.attestation_requirement`, `publish/attestation_rules.py`):

- `none`: attestations are verified when an upload carries them, not required;
- `ci`: an upload made with a CI ID token must carry one (a person's upload
  with a password or API token need not: a person cannot attest);
- `all`: every upload must carry one, so only CI jobs can upload.

An upload whose attestations do not verify is refused whatever the
requirement: a file is never stored with a provenance that was not checked.
"""

from __future__ import annotations

from packyard.attestations.publisher import publisher_of
from packyard.attestations.verify import AttestationVerifier, Verified
from packyard.auth.identity import Identity
from packyard.errors import InvalidRequest
from packyard.settings import AttestationRequirement, OidcIssuerSettings

REQUIREMENTS: tuple[AttestationRequirement, ...] = ("none", "ci", "all")


def check_requirement(value: str) -> AttestationRequirement:
    """`value` as a requirement.

    Raises:
        InvalidRequest: not one of `REQUIREMENTS`.
    """
    for known in REQUIREMENTS:
        if value == known:
            return known
    raise InvalidRequest(f"An attestation requirement is 'none', 'ci' or 'all', not {value!r}.")


class UploadAttestations:
    """Applies the requirement to uploads and verifies what they carry."""

    def __init__(
        self,
        verifier: AttestationVerifier,
        issuers: tuple[OidcIssuerSettings, ...],
        default: AttestationRequirement = "none",
        *,
        help_url: str = "/help/",
    ) -> None:
        """`help_url`: this server's help page, which a refusal for a missing
        attestation links to."""
        self.verifier = verifier
        self.issuers = issuers
        self.default = default
        self.help_url = help_url

    def effective(self, project_requirement: str | None) -> AttestationRequirement:
        """The requirement in force for a project (its own, else the configured one)."""
        for known in REQUIREMENTS:
            if project_requirement == known:
                return known
        return self.default

    def check(
        self,
        identity: Identity,
        fields: list[str],
        project: str,
        requirement: AttestationRequirement,
        filename: str,
        sha256: str,
    ) -> Verified | None:
        """The upload's verified attestations, or None when it carries none and
        none is required. `fields` are the form's `attestations` values.

        Raises:
            InvalidRequest: required and missing, given twice, or not verifying.
        """
        if len(fields) > 1:
            raise InvalidRequest("The attestations field may appear once: one JSON array.")
        field = fields[0].strip() if fields else ""
        if not field:
            if requirement == "all" or (requirement == "ci" and identity.kind == "ci"):
                raise _required(project, requirement, self.help_url)
            return None
        publisher = publisher_of(identity, self.issuers)
        return self.verifier.verify(field, filename, sha256, publisher)


def _required(project: str, requirement: AttestationRequirement, help_url: str) -> InvalidRequest:
    who = "every upload" if requirement == "all" else "uploads made by CI jobs"
    return InvalidRequest(
        f"Project {project!r} requires a verified PEP 740 attestation for {who}: sign the "
        "file in the CI job that publishes it and upload the attestation with it "
        f"(twine upload --attestations; see {help_url}#attestations)."
    )
