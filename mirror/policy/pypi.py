"""PyPI entries: PEP 503 names, PEP 440 specifiers, pre-releases only on request."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from mirror.policy.conditions import CONDITION_KEYS
from mirror.policy.interface import Ecosystem, ExceptionGrant, InvalidGrant, VersionMatcher
from mirror.policy.schema import COMMON_ENTRY_KEYS, DENY_KEYS, EntryReader, EntrySchema, Target

# PEP 508 / core metadata: letters, digits, and . _ - inside, alphanumeric at both ends.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@lru_cache(maxsize=65536)
def parse_specifier(text: str) -> SpecifierSet:
    """Parse once per distinct spelling: allowlists repeat the same ranges a lot."""
    return SpecifierSet(text)


def parse_version(text: str) -> Version | None:
    """Cached for real versions; a long text (no release is spelled in 40 characters or more, but
    a request path may be) is parsed each time, so that the cache's size stays bounded."""
    return _parse_version(text) if len(text) < 40 else _parse_version.__wrapped__(text)


@lru_cache(maxsize=65536)
def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalisation, `re.sub(r"[-_.]+", "-", name).lower()` as the PEP defines it.

    Two `str.replace` calls cost a third of the regex pass; the regex runs only when separators
    stand together (`a__b`), which a valid name rarely has.
    """
    folded = name.lower().replace("_", "-").replace(".", "-")
    return _SEPARATORS.sub("-", folded) if "--" in folded else folded


@lru_cache(maxsize=65536)
def _matcher(text: str | None, prereleases: bool) -> PypiVersions:
    """Matchers are immutable: entries with the same range share one. Keyed by the text (a
    SpecifierSet hashes in Python); raises InvalidSpecifier for a bad one."""
    return PypiVersions(parse_specifier(text) if text is not None else None, prereleases, text)


class PypiVersions(VersionMatcher):
    """A PEP 440 specifier set; pre-releases admitted only when the entry says so."""

    __slots__ = ("specifier", "prereleases", "_text")

    def __init__(self, specifier: SpecifierSet | None, prereleases: bool, text: str | None = None) -> None:
        self.specifier = specifier
        self.prereleases = prereleases
        self._text = text if text is not None else (str(specifier) if specifier else "")
        """As the reviewer wrote it: packaging would reorder `>=1.26,<3` to `<3,>=1.26`."""

    def matches(self, version: str, build: str | None) -> bool:
        parsed = parse_version(version)
        if parsed is None:
            return False
        if parsed.is_prerelease and not self.prereleases:
            return False
        if self.specifier is None:
            return True
        return self.specifier.contains(parsed, prereleases=True)

    @property
    def unrestricted(self) -> bool:
        return self.specifier is None and self.prereleases

    @property
    def description(self) -> str:
        text = self._text or "any release"
        return f"{text}, pre-releases allowed" if self.prereleases else text

    def why_not(self, version: str, build: str | None) -> str:
        parsed = parse_version(version)
        if parsed is None:
            return f"{version!r} is not a valid PEP 440 version"
        if parsed.is_prerelease and not self.prereleases:
            return f"{version} is a pre-release and the entry does not set 'prereleases: true'"
        return f"{version} is outside the allowed versions {self.description}"


class PypiSchema(EntrySchema):
    ecosystem = Ecosystem.PYPI
    list_key = "packages"
    name_key = "name"
    allow_keys = COMMON_ENTRY_KEYS | CONDITION_KEYS | {"name", "versions", "prereleases"}
    deny_keys = DENY_KEYS | {"name", "versions"}

    def normalize_name(self, name: str) -> str:
        return normalize(name)

    def read_target(self, entry: EntryReader, context: Any, deny: bool) -> Target | None:
        name = entry.text("name", required=True)
        if name is not None and not _PROJECT_NAME.match(name):
            entry.error("name", f"invalid project name {name!r}: use letters, digits, '.', '_' and '-' (PEP 508)")
            name = None
        versions = entry.text("versions", required=False)
        prereleases = False if deny else entry.boolean("prereleases")
        try:
            matcher = _matcher(versions, prereleases or deny)
        except InvalidSpecifier:
            entry.error("versions", f'invalid PEP 440 specifier {versions!r} (e.g. ">=1.26,<3" or "==2.1.*")')
            return None
        if name is None:
            return None
        return Target(normalize(name), matcher)

    def quick_target(self, raw: dict[str, Any], context: Any, deny: bool) -> Target | None:
        name, versions, prereleases = raw.get("name"), raw.get("versions"), raw.get("prereleases", False)
        if type(name) is not str or not _PROJECT_NAME.match(name) or type(prereleases) is not bool:
            return None
        if versions is not None and (type(versions) is not str or not versions or versions != versions.strip()):
            return None
        try:
            return Target(normalize(name), _matcher(versions, prereleases or deny))
        except InvalidSpecifier:
            return None

    def grant_target(self, grant: ExceptionGrant) -> Target:
        if not _PROJECT_NAME.match(grant.package):
            raise InvalidGrant("package", f"invalid project name {grant.package!r}")
        try:
            return Target(normalize(grant.package), _matcher(grant.versions or None, False))
        except InvalidSpecifier as exc:
            raise InvalidGrant("versions", f"invalid PEP 440 specifier {grant.versions!r}") from exc
