"""Conda entries: MatchSpecs evaluated by py-rattler against name, version and build string."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mirror.policy.conditions import CONDITION_KEYS
from mirror.policy.interface import Ecosystem, ExceptionGrant, InvalidGrant, VersionMatcher
from mirror.policy.schema import (
    COMMON_ENTRY_KEYS,
    DENY_KEYS,
    Diagnostics,
    EntryReader,
    EntrySchema,
    Target,
    read_upstreams,
)
from mirror.policy.yamlsource import SourceDocument

# py-rattler is imported where a conda entry or question first needs it: the gate and the PyPI
# paths load this module with every schema but seldom a conda file, and the import costs ~50 ms.
if TYPE_CHECKING:
    from rattler import MatchSpec, PackageRecord

DEFAULT_SUBDIRS = ("noarch", "linux-64")
_CHANNEL_KEYS = frozenset({"url", "subdirs"})
_SUBDIR = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""`noarch`, `linux-64`, `osx-arm64`…: a subdir becomes a folder and a URL segment."""
_NO_BUILD = "__unspecified__"


@dataclass(frozen=True, slots=True)
class CondaChannel:
    name: str
    url: str
    subdirs: tuple[str, ...] = DEFAULT_SUBDIRS


class CondaSpec(VersionMatcher):
    """A rattler MatchSpec; a question becomes a minimal PackageRecord it is matched against."""

    __slots__ = ("spec", "_text", "_name_only")

    def __init__(self, spec: MatchSpec) -> None:
        self.spec = spec
        text = str(spec)
        rest = text.split(" ", 1)
        self._text = rest[1] if len(rest) == 2 else "any version"
        # Just a name (no version, build or [key=value] part): every valid version and build
        # matches, so no record is built (a sync asks this of every upstream record).
        self._name_only = text == str(spec.name.normalized)

    def matches(self, version: str, build: str | None) -> bool:
        if self._name_only:
            return valid_version(version)
        record = package_record(str(self.spec.name.normalized), version, build)
        return record is not None and self.spec.matches(record)

    @property
    def unrestricted(self) -> bool:
        return self.spec.version is None and self.spec.build is None

    @property
    def description(self) -> str:
        return self._text

    def why_not(self, version: str, build: str | None) -> str:
        shown = f"{version}={build}" if build else version
        if not valid_version(version):
            return f"{shown!r} is not a valid conda version"
        return f"{shown} does not match the spec {self._text!r}"


def valid_version(version: str) -> bool:
    from rattler import Version

    try:
        Version(version)
    except Exception:  # rattler raises its own exception types for malformed versions
        return False
    return True


def package_record(name: str, version: str, build: str | None) -> PackageRecord | None:
    from rattler import BuildString, PackageRecord

    if not valid_version(version):
        return None
    # A question without a build (`explain conda numpy=2.0`) must not satisfy a build pattern.
    return PackageRecord(
        name=name, version=version, build=BuildString(build or _NO_BUILD), build_number=0, subdir="noarch"
    )


def parse_match_spec(text: str) -> MatchSpec:
    """Parse a MatchSpec; raise ValueError with a reviewer-facing message."""
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    try:
        spec = MatchSpec(text)
    except InvalidMatchSpecError as exc:
        raise ValueError(f"invalid MatchSpec {text!r}: {exc}") from None
    if spec.channel is not None:
        raise ValueError(f"MatchSpec {text!r} names a channel: write it as 'channel: NAME' beside the spec")
    return spec


class CondaSchema(EntrySchema):
    ecosystem = Ecosystem.CONDA
    list_key = "packages"
    name_key = "spec"
    allow_keys = COMMON_ENTRY_KEYS | CONDITION_KEYS | {"spec", "channel"}
    deny_keys = DENY_KEYS | {"spec"}
    extra_top_level_keys = frozenset({"channels"})

    def normalize_name(self, name: str) -> str:
        return name.lower()

    def read_context(self, document: SourceDocument, diagnostics: Diagnostics) -> dict[str, CondaChannel]:
        channels: dict[str, CondaChannel] = {}
        found = read_upstreams(
            document,
            diagnostics,
            "channels",
            "channel",
            _CHANNEL_KEYS,
            "conda-forge: {url: https://conda.anaconda.org/conda-forge}",
        )
        for name, (url, body) in found.items():
            subdirs = body.get("subdirs", list(DEFAULT_SUBDIRS))
            if (
                not isinstance(subdirs, list)
                or not subdirs
                or not all(isinstance(s, str) and _SUBDIR.match(s) for s in subdirs)
            ):
                diagnostics.error(
                    ("channels", name, "subdirs"), f"channel {name!r}: 'subdirs' must be a list like [noarch, linux-64]"
                )
                continue
            channels[name] = CondaChannel(name, url, tuple(subdirs))
        return channels

    def read_target(self, entry: EntryReader, context: Any, deny: bool) -> Target | None:
        text = entry.text("spec", required=True)
        channel = None if deny else entry.text("channel", required=False)
        channels: dict[str, CondaChannel] = context or {}
        if channel is not None and channels and channel not in channels:
            entry.error("channel", f"unknown channel {channel!r} (declared: {', '.join(sorted(channels))})")
            return None
        if channel is None and not deny and len(channels) > 1:
            entry.error(None, f"missing 'channel': this file declares several ({', '.join(sorted(channels))})")
            return None
        if text is None:
            return None
        try:
            spec = parse_match_spec(text)
        except ValueError as exc:
            entry.error("spec", str(exc))
            return None
        if channel is None and len(channels) == 1:
            channel = next(iter(channels))
        return Target(str(spec.name.normalized), CondaSpec(spec), channel)

    def grant_target(self, grant: ExceptionGrant) -> Target:
        try:
            spec = parse_match_spec(grant.package)
        except ValueError as exc:
            raise InvalidGrant("package", str(exc)) from None
        return Target(str(spec.name.normalized), CondaSpec(spec))
