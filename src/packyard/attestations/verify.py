"""Verifying an upload's `attestations` field, offline (PEP 740).

The field is a JSON array of attestation objects. Each is checked, in order:

1. its shape (`pypi_attestations.Attestation`), the field at most
   `MAX_FIELD_BYTES`, at most one attestation per predicate type (publish
   v1, SLSA provenance v1, the two PyPI knows), as PyPI does;
2. its Sigstore bundle against the configured trust root (`[attestations]
   trusted_root`; the public-good root bundled with `sigstore` by default):
   certificate chain, transparency log entry, signed time. Nothing is
   fetched: the trust root is a file, read once at start;
3. its certificate against the trusted publisher (`publisher.py`);
4. its statement: one subject, whose name is the file's and whose sha256 is
   the uploaded bytes'.

What passes becomes the PEP 740 provenance object served for the file, with
a summary the pages and the browser show (`Verified`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sigstore.errors
from pydantic import ValidationError
from pypi_attestations import Attestation, AttestationType
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

from packyard.attestations.publisher import (
    BUILD_CONFIG_URI,
    RUN_INVOCATION_URI,
    SOURCE_REPOSITORY_DIGEST,
    SOURCE_REPOSITORY_REF,
    PublisherMismatch,
    TrustedPublisher,
)
from packyard.errors import ConfigurationError, InvalidRequest

MAX_FIELD_BYTES = 256 * 1024  # a real attestation is ~8 KB; two of them fit many times
IN_TOTO = "application/vnd.in-toto+json"
PREDICATE_TYPES = frozenset(kind.value for kind in AttestationType)
PUBLIC_GOOD = "Sigstore's public-good instance (bundled with sigstore)"


@dataclass(frozen=True, slots=True)
class Verified:
    """An upload's attestations, verified.

    `provenance` is the PEP 740 provenance object (JSON) served for the file;
    `summary` (JSON) is what pages show: the publisher, and the commit, ref and
    run its certificate names.
    """

    provenance: str
    summary: str
    predicate_types: tuple[str, ...]


class AttestationVerifier:
    """Verifies attestations against one Sigstore trust root (module docstring)."""

    def __init__(self, trusted_root: Path | None = None) -> None:
        """`trusted_root`: a `trusted_root.json`; None: the public-good one.

        Raises:
            ConfigurationError: the file cannot be read or is not a trusted root.
        """
        self.root_name = str(trusted_root) if trusted_root else PUBLIC_GOOD
        try:
            root = TrustedRoot.from_file(str(trusted_root or _public_good_root()))
            self._verifier = Verifier(trusted_root=root)
        except (OSError, ValueError, sigstore.errors.Error) as exc:
            raise ConfigurationError(
                f"[attestations] trusted_root {self.root_name} is not a Sigstore "
                f"trusted_root.json that can be read: {exc}"
            ) from exc

    def verify(
        self, field: str, filename: str, sha256: str, publisher: TrustedPublisher
    ) -> Verified:
        """Verify the `attestations` form field of the upload of `filename`.

        Raises:
            InvalidRequest: the field is too large or malformed, holds two
                attestations of one predicate type, or one does not verify;
                the message says what did not match.
        """
        attestations = parse_field(field)
        types: list[str] = []
        for attestation in attestations:
            types.append(self._verify_one(attestation, filename, sha256, publisher))
        duplicated = sorted({kind for kind in types if types.count(kind) > 1})
        if duplicated:
            raise InvalidRequest(
                f"More than one attestation of predicate type {duplicated[0]}: "
                "at most one of each type per file."
            )
        provenance = {
            "version": 1,
            "attestation_bundles": [
                {
                    "publisher": publisher.as_pep740(),
                    "attestations": [a.model_dump(mode="json") for a in attestations],
                }
            ],
        }
        return Verified(
            json.dumps(provenance, separators=(",", ":")),
            json.dumps(_summary(attestations[0], publisher, types), separators=(",", ":")),
            tuple(types),
        )

    def _verify_one(
        self, attestation: Attestation, filename: str, sha256: str, publisher: TrustedPublisher
    ) -> str:
        """The attestation's predicate type, once it verifies."""
        try:
            kind, payload = self._verifier.verify_dsse(attestation.to_bundle(), publisher)
        except PublisherMismatch as exc:
            raise InvalidRequest(f"The attestation does not match the publisher: {exc}.") from exc
        except (sigstore.errors.Error, ValueError) as exc:
            raise InvalidRequest(
                f"The attestation's Sigstore bundle does not verify: {exc}. It was checked "
                f"against the trust root configured here ({self.root_name}): a bundle of "
                "another Sigstore instance, an expired certificate or an altered signature "
                "is refused."
            ) from exc
        if kind != IN_TOTO:
            raise InvalidRequest(
                f"The attestation's envelope holds {kind}, not an in-toto statement."
            )
        return _check_statement(payload, filename, sha256)


def parse_field(field: str) -> list[Attestation]:
    """The attestations of the form field, checked for shape only.

    Raises:
        InvalidRequest: too large, not a non-empty JSON array of attestation objects.
    """
    size = len(field.encode())
    if size > MAX_FIELD_BYTES:
        raise InvalidRequest(
            f"The attestations field is {size} bytes: at most {MAX_FIELD_BYTES} are accepted."
        )
    try:
        raw = json.loads(field)
    except ValueError as exc:
        raise InvalidRequest(f"The attestations field is not JSON: {exc}.") from None
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("The attestations field must be a non-empty JSON array.")
    found: list[Attestation] = []
    for index, entry in enumerate(raw, 1):
        try:
            found.append(Attestation.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "it"
            raise InvalidRequest(
                f"Attestation {index} is malformed: {where}: {first['msg']}."
            ) from None
    return found


def _check_statement(payload: bytes, filename: str, sha256: str) -> str:
    """The statement's predicate type, if its one subject is the uploaded file."""
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        kind = statement["predicateType"]
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("The attestation's statement is not an in-toto statement.") from None
    if kind not in PREDICATE_TYPES:
        known = ", ".join(sorted(PREDICATE_TYPES))
        raise InvalidRequest(f"Unknown attestation predicate type {kind!r}: known are {known}.")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise InvalidRequest("The attestation must have exactly one subject: the file.")
    subject = subjects[0]
    if subject.get("name") != filename:
        raise InvalidRequest(
            f"The attestation is for {subject.get('name')!r}, not for {filename!r}."
        )
    digest = (
        subject.get("digest", {}).get("sha256") if isinstance(subject.get("digest"), dict) else None
    )
    if digest != sha256:
        raise InvalidRequest(
            f"The attestation is for other bytes: it signs sha256 {digest}, "
            f"the uploaded {filename} is {sha256}."
        )
    return str(kind)


def _summary(
    attestation: Attestation, publisher: TrustedPublisher, types: list[str]
) -> dict[str, object]:
    claims = attestation.certificate_claims
    return {
        "publisher": publisher.as_pep740(),
        "issuer": publisher.issuer,
        "repository_url": publisher.repository_url,
        "build_config": claims.get(BUILD_CONFIG_URI),
        "commit": claims.get(SOURCE_REPOSITORY_DIGEST),
        "ref": claims.get(SOURCE_REPOSITORY_REF),
        "run": claims.get(RUN_INVOCATION_URI),
        "predicate_types": types,
    }


def _public_good_root() -> Path:
    """The trusted root of Sigstore's public-good instance that `sigstore` ships."""
    store = resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    return Path(str(store / "trusted_root.json"))
