"""Who published an in-house file, as its verified PEP 740 provenance says.

An upload's attestations are verified when it is stored (`attestations/verify.py`)
and a summary of what they prove is kept in `files.provenance_publisher`: the
Trusted Publisher (kind, repository, CI file, environment) and the commit,
ref and run the signing certificate names. The project page shows it per
file, as PyPI's "Verified details" do.

The summary is read tolerantly: text that is not the expected JSON gives no
`Publisher` (the page then says only that a provenance is present), never an
error. Nothing from it is trusted as HTML (the templates escape it) or as a
link unless it is an `https://` URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.attestations.requirement import REQUIREMENTS
from packyard.db.models import File, Project
from packyard.settings import AttestationRequirement

# What each kind calls the CI file: PEP 740's GitLab publisher has
# `workflow_filepath`, the GitHub one `workflow`.
_WORKFLOW_KEYS = ("workflow_filepath", "workflow")
_COMMIT = re.compile(r"[0-9a-f]{7,64}", re.ASCII)
# How each forge links one commit of a repository.
_COMMIT_PATHS = {"GitHub": "/commit/", "GitLab": "/-/commit/"}
_REQUIRING: frozenset[str] = frozenset({"ci", "all"})


@dataclass(frozen=True, slots=True)
class Publisher:
    """The verified publisher of one file, and what its certificate names."""

    kind: str  # "GitLab", "GitHub"
    repository: str  # e.g. "group/project"
    repository_url: str | None  # https only, else None
    workflow: str | None  # the CI file: ".gitlab-ci.yml", "release.yml"
    environment: str | None
    commit: str | None
    ref: str | None  # e.g. "refs/heads/main", "refs/tags/v1.0"
    run_url: str | None  # the CI job or run; https only, else None

    @property
    def commit_url(self) -> str | None:
        """The commit on the forge, when the kind, the URL and the commit allow one."""
        path = _COMMIT_PATHS.get(self.kind)
        if path is None or self.repository_url is None or self.commit is None:
            return None
        if not _COMMIT.fullmatch(self.commit):
            return None
        return self.repository_url.rstrip("/") + path + self.commit


def parse_summary(text: str | None) -> Publisher | None:
    """The publisher a stored summary (`attestations.Verified.summary`) names;
    None when `text` is None, not JSON, or lacks the publisher's kind or repository."""
    if not text:
        return None
    try:
        summary = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(summary, dict):
        return None
    publisher = summary.get("publisher")
    if not isinstance(publisher, dict):
        return None
    kind, repository = _text(publisher.get("kind")), _text(publisher.get("repository"))
    if kind is None or repository is None:
        return None
    workflows = (_text(publisher.get(key)) for key in _WORKFLOW_KEYS)
    return Publisher(
        kind=kind,
        repository=repository,
        repository_url=_https(summary.get("repository_url")),
        workflow=next((w for w in workflows if w is not None), None),
        environment=_text(publisher.get("environment")),
        commit=_text(summary.get("commit")),
        ref=_text(summary.get("ref")),
        run_url=_https(summary.get("run")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _https(value: object) -> str | None:
    """`value` if it is an absolute https URL with a host and no spaces or
    control characters; anything else (`javascript:`, `http:`, relative) is no link."""
    text = _text(value)
    if text is None or not text.startswith("https://") or len(text) <= len("https://"):
        return None
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in text):
        return None
    host = text[len("https://") :].split("/", 1)[0]
    return text if host and host[0] not in "?#" else None


@dataclass(frozen=True, slots=True)
class ProjectProvenance:
    """What a project page shows of its files' provenance."""

    publishers: Mapping[str, Publisher]  # by filename: the files whose summary parses
    required: bool  # the requirement in force is "ci" or "all"


NO_PROVENANCE = ProjectProvenance({}, required=False)


class ProvenanceRecords:
    """Reads the provenance summaries and the attestation requirement of
    in-house projects. Synchronous SQLAlchemy: call from a worker thread."""

    def __init__(
        self, sessions: sessionmaker[Session], default: AttestationRequirement = "none"
    ) -> None:
        """`default`: the configured `[attestations] require`, in force for a
        project that has no requirement of its own."""
        self._sessions = sessions
        self.default = default

    def project(self, name: str) -> ProjectProvenance:
        """The publishers of the files of in-house project `name` (normalised)
        and whether it requires provenance; `NO_PROVENANCE` if it is not in-house."""
        with self._sessions() as session:
            own = session.execute(
                select(Project.id, Project.attestation_requirement).where(Project.name == name)
            ).first()
            if own is None:
                return NO_PROVENANCE
            rows = session.execute(
                select(File.filename, File.provenance_publisher).where(
                    File.project_id == own.id, File.provenance_publisher.is_not(None)
                )
            ).all()
        publishers = {filename: parse_summary(summary) for filename, summary in rows}
        return ProjectProvenance(
            {filename: found for filename, found in publishers.items() if found is not None},
            required=self.effective(own.attestation_requirement) in _REQUIRING,
        )

    def effective(self, requirement: str | None) -> AttestationRequirement:
        """The requirement in force: the project's own, else the configured default
        (as `attestations.requirement.UploadAttestations.effective` decides it)."""
        for known in REQUIREMENTS:
            if requirement == known:
                return known
        return self.default
