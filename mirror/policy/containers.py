"""Container entries: `upstream/repository` with tag globs and/or pinned digests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, NamedTuple

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

if TYPE_CHECKING:
    from mirror.policy.allowlist import Allowlist

# OCI distribution spec: path components of lowercase alphanumerics joined by separators.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
# A tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; a glob may also use * ? and [...].
_TAG_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]][A-Za-z0-9_.*?\[\]!-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_UPSTREAM_KEYS = frozenset({"url"})


@dataclass(frozen=True, slots=True)
class RegistryUpstream:
    name: str
    url: str


def is_digest(reference: str) -> bool:
    return reference.startswith("sha256:")


class ImageReferences(VersionMatcher):
    """Tag globs and pinned digests; a question's "version" is a tag or a `sha256:` digest."""

    __slots__ = ("tags", "digests", "every_reference")

    def __init__(self, tags: tuple[str, ...], digests: frozenset[str], every_reference: bool = False) -> None:
        self.tags = tags
        self.digests = digests
        self.every_reference = every_reference
        """True for a deny entry without tags: it covers every tag and digest."""

    def matches(self, version: str, build: str | None) -> bool:
        if self.every_reference:
            return True
        if is_digest(version):
            return version in self.digests
        return any(fnmatchcase(version, glob) for glob in self.tags)

    @property
    def unrestricted(self) -> bool:
        return self.every_reference

    @property
    def description(self) -> str:
        if self.every_reference:
            return "every tag and digest"
        parts = []
        if self.tags:
            parts.append("tags " + ", ".join(self.tags))
        if self.digests:
            parts.append(f"{len(self.digests)} pinned digest{'s' if len(self.digests) > 1 else ''}")
        return "; ".join(parts) or "any tag"

    def why_not(self, version: str, build: str | None) -> str:
        if is_digest(version):
            return f"@{version} is not pinned by the entry ({self.description})"
        return f":{version} matches none of the entry's tag globs ({self.description})"


def split_image(image: str) -> tuple[str, str]:
    """`mar/azureml/x` -> (`mar`, `azureml/x`): the first segment names the upstream."""
    upstream, _, repository = image.partition("/")
    return upstream, repository


class ContainersSchema(EntrySchema):
    ecosystem = Ecosystem.CONTAINERS
    list_key = "images"
    name_key = "image"
    allow_keys = COMMON_ENTRY_KEYS | {"image", "tags", "digests"}
    deny_keys = DENY_KEYS | {"image", "tags"}
    extra_top_level_keys = frozenset({"upstreams"})

    def normalize_name(self, name: str) -> str:
        return name

    def read_context(self, document: SourceDocument, diagnostics: Diagnostics) -> dict[str, RegistryUpstream]:
        found = read_upstreams(
            document, diagnostics, "upstreams", "registry", _UPSTREAM_KEYS, "mar: {url: https://mcr.microsoft.com}"
        )
        return {name: RegistryUpstream(name, url) for name, (url, _) in found.items()}

    def read_target(self, entry: EntryReader, context: Any, deny: bool) -> Target | None:
        image = entry.text("image", required=True)
        tags = entry.strings("tags", required=False) or []
        digests = [] if deny else (entry.strings("digests", required=False) or [])
        valid = True
        for tag in tags:
            if not _TAG_GLOB.match(tag):
                entry.error(
                    "tags", f"invalid tag glob {tag!r}: tags use letters, digits, '_', '.', '-' (globs add * ? [])"
                )
                valid = False
        for digest in digests:
            if not DIGEST.match(digest):
                entry.error("digests", f"invalid digest {digest!r}: write sha256: followed by 64 lowercase hex digits")
                valid = False
        if not deny and not tags and not digests and valid:
            entry.error(None, "image entry lists neither 'tags' nor 'digests': name what it allows")
            valid = False
        if image is None:
            return None
        upstream, repository = split_image(image)
        upstreams: dict[str, RegistryUpstream] = context or {}
        if not repository or not _REPOSITORY.match(repository):
            entry.error(
                "image",
                f"invalid image {image!r}: write UPSTREAM/REPOSITORY in lowercase, e.g. mar/azureml/openmpi4.1.0-ubuntu22.04",
            )
            return None
        if upstreams and upstream not in upstreams:
            entry.error(
                "image",
                f"image {image!r} names unknown upstream {upstream!r} (declared: {', '.join(sorted(upstreams))})",
            )
            return None
        if not valid:
            return None
        matcher = ImageReferences(tuple(tags), frozenset(digests), every_reference=deny and not tags)
        return Target(image, matcher)

    def grant_target(self, grant: ExceptionGrant) -> Target:
        upstream, repository = split_image(grant.package)
        if not repository or not _REPOSITORY.match(repository):
            raise InvalidGrant("package", f"invalid image {grant.package!r}")
        reference = grant.versions or ""
        if DIGEST.match(reference):
            return Target(grant.package, ImageReferences((), frozenset({reference})))
        if not _TAG_GLOB.match(reference):
            raise InvalidGrant("versions", f"invalid tag glob or digest {reference!r}")
        return Target(grant.package, ImageReferences((reference,), frozenset()))


class AllowedReference(NamedTuple):
    image: str
    """`upstream/repository` as in containers.yaml."""
    upstream: RegistryUpstream
    repository: str
    reference: str
    """A tag or a `sha256:` digest."""
    rule: str
    """FILE:LINE or exception id."""


def allowed_references(
    allowlist: Allowlist, env: str, list_tags: Callable[[RegistryUpstream, str], list[str]]
) -> list[AllowedReference]:
    """Every concrete image reference the environment allows: pinned digests, and the tags an
    upstream lists (`list_tags(upstream, repository)`, which may raise) that a tag glob admits.
    Pure given `list_tags`: the sync and the gate's base-image check both enumerate through here."""
    policy_file = allowlist.policy.files.get(Ecosystem.CONTAINERS)
    if policy_file is None:
        return []
    upstreams: dict[str, RegistryUpstream] = policy_file.context or {}
    found: list[AllowedReference] = []
    for rule, state in allowlist.rules(Ecosystem.CONTAINERS, env):
        if state != "allow" or not isinstance(rule.matcher, ImageReferences):
            continue
        upstream_name, repository = split_image(rule.name)
        upstream = upstreams.get(upstream_name)
        if upstream is None:
            continue
        tags = list_tags(upstream, repository) if rule.matcher.tags else []
        found += [
            AllowedReference(rule.name, upstream, repository, tag, str(rule.origin))
            for tag in tags
            if any(fnmatchcase(tag, glob) for glob in rule.matcher.tags)
        ]
        found += [
            AllowedReference(rule.name, upstream, repository, digest, str(rule.origin))
            for digest in sorted(rule.matcher.digests)
        ]
    return found
