"""PEP 740 attestations: verified on upload, stored with the file, served as provenance.

A CI job signs each distribution with Sigstore under its own workload
identity (`twine upload --attestations`, `uv publish`); the upload carries
the attestations in its `attestations` field. packyard verifies them offline
against a configured Sigstore trust root and against the publisher the CI ID
token that authenticated the upload names (`publisher.py`, `verify.py`), and
keeps the PEP 740 provenance object with the file, which `/integrity/…`
serves (`routes/integrity.py`). A project may require them
(`requirement.py`).
"""
