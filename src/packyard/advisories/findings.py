"""Whether an in-house release's requirement admits only affected versions.

    requirements = read_requirements(metadata_bytes)      # its Requires-Dist, parsed once
    finding = check_requirement(requirement, advisories, known_versions)

The rule. A requirement's *candidates* are the versions of its dependency
that packyard knows without asking the network:

- every version the dependency's records in force name: listed in
  `affected[].versions`, or an `introduced` / `fixed` / `last_affected` event
  of an ECOSYSTEM range (the PyPA records list nearly every affected release,
  and a fix is a real release);
- every version the requirement itself names (`==3.2.0`, the `3.2.1` of
  `>=3.2.1`, the `3.2` of `==3.2.*`);
- every version of the dependency stored in packyard (`known_versions`: an
  in-house project or one carried in with `packyard import`);
- two stand-ins for the releases no record names: `0`, before them all,
  and `999999999`, after them all. Records name the affected versions and
  their fixes, not what came before or after: a project has releases older
  than a range that starts past `0`, and will have releases after its last
  fix. So `django!=3.2.25` (which excludes the one fix of 3.2 that the
  records name) is not flagged, while an open range (`introduced` with no
  fix) still affects the stand-in and flags every requirement it reaches.

The requirement's specifier chooses among them by PEP 440, pre-releases
included only when it asks for them (or when nothing else matches), as pip
chooses. The requirement is *flagged* when at least one candidate is
admitted and every admitted candidate is affected by some record in force
that no admin accepted for that dependency. A pin (`==`, `===`) of an
affected version is therefore flagged; so is a range that lies inside the
affected ones (`django>=3.2,<3.2.5`); an open requirement (`django>=3.2`,
`django`) is flagged only when a record has no fix.

What counts: every Requires-Dist, whatever its environment marker or the
extra it belongs to (a `; python_version < "3.8"` requirement is still
something the release lets a user install; the server cannot know the
user's environment). Extras of the dependency (`django[argon2]`) do not
change which versions it has. A direct reference (`pkg @ https://…`) names
no version and is never flagged.

Why only known versions, and the same ones everywhere: the same answer at
upload and at every import (which must work offline), so a flag never comes
and goes between the two. See docs/advisories.md, "In-house packages".
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.advisories.index import Advisories
from packyard.advisories.records import OsvRecord

MAX_REQUIREMENT_LENGTH = 1_000  # longer Requires-Dist values are not checked (nor stored)
_ZERO = Version("0")  # `introduced: "0"`: the start of time, not a release
# Stand-ins for the releases before and after every one the records name.
_STAND_INS = (_ZERO, Version("999999999"))


@dataclass(frozen=True, slots=True)
class Finding:
    """A requirement that admits only affected versions of `dependency`.

    `requirement` is the Requires-Dist as `packaging` writes it back
    (`Django[argon2]>=3.2; python_version < "3"`); `advisory_ids`, sorted,
    are the records that affect the versions it admits.
    """

    requirement: str
    dependency: str  # normalised
    advisory_ids: tuple[str, ...]


def read_requirements(metadata: bytes) -> tuple[Requirement, ...]:
    """The Requires-Dist entries of a METADATA or PKG-INFO file, each once (the
    first spelling of a repeated one).

    An entry that is not a valid requirement, or longer than
    `MAX_REQUIREMENT_LENGTH`, is left out: it cannot be checked (an upload
    checks the form's requirements, `publish/validation.py`). Never raises.
    """
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(metadata)
    found: dict[str, Requirement] = {}
    for value in headers.get_all("Requires-Dist") or ():
        text = str(value).strip()
        if len(text) > MAX_REQUIREMENT_LENGTH:
            continue
        try:
            requirement = Requirement(text)
            same = Requirement(text)  # the key: `Django>=3.2` is `django >= 3.2`
        except InvalidRequirement:
            continue
        same.name = canonicalize_name(same.name)
        found.setdefault(str(same), requirement)
    return tuple(found.values())


def check_requirement(
    requirement: Requirement, advisories: Advisories, known_versions: Iterable[str] = ()
) -> Finding | None:
    """The finding on `requirement`, or None when it admits an unaffected version
    (or no known version at all); see the module's docstring for the rule.

    `advisories` holds at least the records of the requirement's dependency
    and the accepted risks; `known_versions` are the dependency's versions
    stored in packyard. Never raises.
    """
    name = canonicalize_name(requirement.name)
    return RequirementChecker(advisories, {name: known_versions}).check(requirement)


class RequirementChecker:
    """`check_requirement` for many requirements against one `Advisories`: what
    depends only on the dependency (its records in force and not accepted, the
    versions they name) is worked out once per dependency, and which records
    affect a version once per version (`Advisories.affecting` remembers it).

    `known_versions`: the versions packyard stores, by normalised name.
    """

    def __init__(self, advisories: Advisories, known_versions: Mapping[str, Iterable[str]]) -> None:
        self._advisories = advisories
        self._known = known_versions
        self._named: dict[str, tuple[frozenset[str], list[Version]]] = {}

    def check(self, requirement: Requirement) -> Finding | None:
        """The finding on `requirement`, or None. Never raises."""
        dependency = canonicalize_name(requirement.name)
        considered, named = self._dependency(dependency)
        if not considered or requirement.url:
            return None
        admitted = list(requirement.specifier.filter(_candidates(requirement, named)))
        ids: set[str] = set()
        # Newest first: an open requirement meets an unaffected release (a fix,
        # the stand-in after them all) at once.
        for version in reversed(admitted):
            affecting = [
                record.id
                for record in self._advisories.affecting(dependency, str(version))
                if record.id in considered
            ]
            if not affecting:
                return None
            ids.update(affecting)
        return Finding(str(requirement), dependency, tuple(sorted(ids))) if ids else None

    def _dependency(self, name: str) -> tuple[frozenset[str], list[Version]]:
        """The ids of the records that count against `name`, and the versions
        they, packyard and the stand-ins name, in order."""
        found = self._named.get(name)
        if found is None:
            advisories = self._advisories
            records = [
                record
                for record in advisories.for_project(name)
                if advisories.accepted_reason(record.id, name) is None
            ]
            versions: set[Version] = set(_STAND_INS)
            for record in records:
                versions.update(_named_by(record, name))
            versions.update(_pep440(self._known.get(name, ())))
            found = (frozenset(record.id for record in records), sorted(versions))
            self._named[name] = found
        return found


def _candidates(requirement: Requirement, named: list[Version]) -> list[Version | str]:
    """The versions to choose among (the module's docstring), in order: those
    named for the dependency and by the requirement; then the literal of an
    `===` specifier, as text (arbitrary equality compares text)."""
    own: set[Version] = set()
    literals: list[str] = []
    for specifier in requirement.specifier:
        if specifier.operator == "===":
            literals.append(specifier.version)
        else:
            own.update(_pep440([specifier.version.removesuffix(".*")]))
    versions: list[Version] = named if not own else sorted(own.union(named))
    return [*versions, *sorted(literals)]


def _named_by(record: OsvRecord, name: str) -> Iterator[Version]:
    for entry in record.affected.get(name, ()):
        yield from entry.listed
        for interval in entry.intervals:
            if interval.start != _ZERO:
                yield interval.start
            if interval.end is not None:
                yield interval.end


def _pep440(texts: Iterable[str]) -> Iterator[Version]:
    for text in texts:
        try:
            yield Version(text)
        except InvalidVersion:
            continue
