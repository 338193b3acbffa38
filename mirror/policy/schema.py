"""Field-level validation shared by every allowlist file: typed reads that collect diagnostics.

Each ecosystem (`pypi.py`, `conda.py`, `containers.py`) describes its entries with an
`EntrySchema`; `loader.py` walks a file and hands each entry to its schema through an
`EntryReader`, which reports every problem at the line of the offending key.
"""

from __future__ import annotations

import abc
import difflib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mirror.policy.interface import Diagnostic, Ecosystem, ExceptionGrant, VersionMatcher
from mirror.policy.yamlsource import Path, SourceDocument

_STR = {str}
COMMON_ENTRY_KEYS = frozenset({"environments", "reason", "owner", "expires"})
DENY_KEYS = frozenset({"environments", "reason", "owner"})


class Target(NamedTuple):
    """What an entry names once validated: normalised name, matcher, optional channel."""

    name: str
    matcher: VersionMatcher
    channel: str | None = None


class Diagnostics:
    """Collects the problems of one file; nothing of a file with errors is applied."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.items: list[Diagnostic] = []

    def error(self, path: Path, message: str) -> None:
        self.items.append(Diagnostic(self.document.file, self.document.line_of(path), message))

    def error_at(self, line: int, message: str) -> None:
        self.items.append(Diagnostic(self.document.file, line, message))

    def warning_at(self, line: int, message: str) -> None:
        self.items.append(Diagnostic(self.document.file, line, message, severity="warning"))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)


def describe_type(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def unknown_key_message(key: Any, allowed: frozenset[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
    return f"unknown key {key!r}{hint}"


def read_upstreams(
    document: SourceDocument, diagnostics: Diagnostics, key: str, what: str, allowed: frozenset[str], example: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Read a top-level `{NAME: {url: http(s)://..., ...}}` mapping (conda channels, registries).

    Returns name -> (url without trailing slash, the whole body) for the well-formed ones.
    """
    raw = document.value.get(key)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    if not isinstance(raw, dict) or not raw:
        line = document.line_of((key,)) if key in document.value else 1
        diagnostics.error_at(line, f"missing or empty {key!r}: name each upstream {what} with its url, e.g. {example}")
        return found
    for name, body in raw.items():
        path = (key, name)
        if not isinstance(name, str) or not UPSTREAM_NAME.match(name):
            # The name becomes a URL path segment, a folder and a child's configuration.
            diagnostics.error(
                path,
                f"invalid {what} name {str(name)[:80]!r}: lowercase letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 63 characters",
            )
            continue
        if not isinstance(body, dict):
            diagnostics.error(path, f"{what} {name!r} must be a mapping with 'url', got {describe_type(body)}")
            continue
        for extra in body.keys() - allowed:
            diagnostics.error(path + (extra,), unknown_key_message(extra, allowed))
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            diagnostics.error(path, f"{what} {name!r} needs 'url: http(s)://...', got {describe_type(url)}")
            continue
        if not _plain_url(url):
            diagnostics.error(
                path + ("url",),
                f"{what} {name!r}: {url[:120]!r} is not a plain http(s) URL (a host, no spaces, quotes or control "
                "characters)",
            )
            continue
        found[str(name)] = (url.rstrip("/"), body)
    return found


UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_URL_TEXT = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$")


def _plain_url(url: str) -> bool:
    if not _URL_TEXT.match(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return bool(parts.hostname)


class EntryReader:
    """Typed access to one entry (a mapping) of a top-level list, reporting bad fields."""

    __slots__ = ("entry", "path", "line", "diagnostics")

    def __init__(self, entry: dict[str, Any], path: Path, line: int, diagnostics: Diagnostics) -> None:
        self.entry = entry
        self.path = path
        self.line = line
        self.diagnostics = diagnostics

    def check_keys(self, allowed: frozenset[str]) -> None:
        for key in self.entry.keys() - allowed:
            self.error(key, unknown_key_message(key, allowed))

    def error(self, key: str | None, message: str) -> None:
        if key is None or key not in self.entry:
            self.diagnostics.error_at(self.line, message)
        else:
            self.diagnostics.error(self.path + (key,), message)

    def text(self, key: str, *, required: bool, what: str = "") -> str | None:
        value = self.entry.get(key)
        if value is None:
            if required:
                self.error(key if key in self.entry else None, f"missing {key!r}{what}")
            return None
        if not isinstance(value, str):
            self.error(key, f"{key!r} must be a string, got {describe_type(value)}; quote it")
            return None
        if not value.strip():
            self.error(key, f"empty {key!r}{what}")
            return None
        return value.strip()

    def strings(self, key: str, *, required: bool) -> list[str] | None:
        value = self.entry.get(key)
        if value is None:
            if required:
                self.error(key if key in self.entry else None, f"missing {key!r}")
            return None
        if isinstance(value, str):
            self.error(key, f"{key!r} must be a list, got {describe_type(value)}; write [{value}]")
            return None
        if type(value) is not list or not set(map(type, value)) <= _STR:
            self.error(key, f"{key!r} must be a list of strings, got {describe_type(value)}")
            return None
        return value

    def boolean(self, key: str) -> bool:
        value = self.entry.get(key, False)
        if not isinstance(value, bool):
            self.error(key, f"{key!r} must be true or false, got {describe_type(value)}")
            return False
        return value

    def expiry(self, key: str = "expires") -> datetime | None:
        """An `expires: YYYY-MM-DD` date: the entry applies through that day (UTC)."""
        value = self.entry.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                day = date.fromisoformat(value.strip())
            except ValueError:
                day = None
            if day is not None and len(value.strip()) == 10:
                return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        self.error(key, f"{key!r} must be a date written YYYY-MM-DD, got {describe_type(value)}")
        return None


class EntrySchema(abc.ABC):
    """How one ecosystem's file is laid out and how its entries become targets."""

    ecosystem: Ecosystem
    list_key: str
    """Top-level list of allow entries (`packages` or `images`)."""
    name_key: str
    """Entry key naming the package (`name`, `spec`, `image`)."""
    allow_keys: frozenset[str]
    deny_keys: frozenset[str]
    extra_top_level_keys: frozenset[str] = frozenset()

    def read_context(self, document: SourceDocument, diagnostics: Diagnostics) -> Any:
        """Read file-wide settings (conda channels, container upstreams)."""
        return None

    @abc.abstractmethod
    def read_target(self, entry: EntryReader, context: Any, deny: bool) -> Target | None:
        """Validate the entry's package fields; None (with diagnostics) when invalid."""

    def quick_target(self, raw: dict[str, Any], context: Any, deny: bool) -> Target | None:
        """The target of a plainly well-formed entry, or None to use `read_target` (the default)."""
        return None

    @abc.abstractmethod
    def grant_target(self, grant: ExceptionGrant) -> Target:
        """The target an approved exception admits; raises ValueError when malformed."""

    @abc.abstractmethod
    def normalize_name(self, name: str) -> str:
        """The spelling lookups use (PEP 503 for PyPI)."""

    def duplicate_key(self, target: Target) -> tuple[str, str | None]:
        return (target.name, target.channel)
