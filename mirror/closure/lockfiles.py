"""What a project already uses, read from the files it keeps: requirements.txt, pylock.toml (PEP
751), uv.lock, conda environment.yml and explicit conda lock files.

Pure parsing. Every problem is a `FILE:LINE: message` (or `FILE: package`), and a file with one is
imported not at all: URL and path requirements (`pkg @ https://…`, `-e .`) have no index version an
allowlist could name.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

_CONDA_FILENAME = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(?:conda|tar\.bz2)$")
_CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9_.+-]*)\s*(?:([=<>!~][^=\s]*)(?:=([^\s=]+))?)?\s*$")


@dataclass(frozen=True)
class PypiWanted:
    name: str
    """Normalised."""
    version: str | None
    """The pinned version; None for a requirement to resolve (`specifier`)."""
    specifier: str = ""
    origin: str = ""
    """`FILE:LINE` it came from."""


@dataclass(frozen=True)
class CondaWanted:
    name: str
    version: str | None
    build: str | None = None
    channel: str | None = None
    origin: str = ""

    @property
    def spec(self) -> str:
        if self.version is None:
            return self.name
        return f"{self.name} =={self.version}" + (f" {self.build}" if self.build else "")


@dataclass
class Imported:
    pypi: list[PypiWanted] = field(default_factory=list)
    conda: list[CondaWanted] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    locked: bool = False
    """True for lock files: the closure is in the file already."""


def read_lockfile(path: Path) -> Imported:
    """Dispatch on the file's name and content; unreadable files are a problem, not a crash."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Imported(problems=[f"{path}: cannot read it ({exc})"])
    name = path.name.lower()
    if name == "uv.lock":
        return _uv_lock(path, text)
    if name.startswith("pylock.") and name.endswith(".toml") or name == "pylock.toml":
        return _pylock(path, text)
    if name.endswith((".yml", ".yaml")):
        return _environment_yml(path, text)
    if "@EXPLICIT" in text:
        return _explicit_conda(path, text)
    return _requirements_txt(path, text)


def _requirements_txt(path: Path, text: str, seen: set[Path] | None = None) -> Imported:
    found = Imported()
    seen = (seen or set()) | {path.resolve()}
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((start, pending + line))
        pending = ""
    for number, line in logical:
        line = line.strip()
        if not line:
            continue
        origin = f"{path}:{number}"
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            included = path.parent / line.split(None, 1)[1].strip()
            if included.resolve() in seen:
                continue
            nested = (
                _requirements_txt(included, included.read_text(), seen)
                if included.is_file()
                else Imported(problems=[f"{origin}: {included} does not exist"])
            )
            found.pypi += nested.pypi
            found.problems += nested.problems
            continue
        if line.startswith(("-e ", "--editable")):
            found.problems.append(
                f"{origin}: '{line}' is an editable path: an allowlist names index packages; install it from its source"
            )
            continue
        if line.startswith("-"):
            continue  # --hash on its own line, --index-url, --find-links and other options say nothing about packages
        text_requirement = re.split(r"\s--hash[= ]", line)[0].strip()
        try:
            requirement = Requirement(text_requirement)
        except InvalidRequirement as exc:
            found.problems.append(f"{origin}: not a requirement ({exc})")
            continue
        if requirement.url:
            found.problems.append(
                f"{origin}: '{requirement.name} @ {requirement.url}' comes from a URL, not an index: "
                "an allowlist cannot name it; publish it to an index or install it from its source"
            )
            continue
        pinned = [s for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        name = str(canonicalize_name(requirement.name))
        if pinned:
            found.pypi.append(PypiWanted(name, pinned[0].version, origin=origin))
        else:
            found.pypi.append(PypiWanted(name, None, str(requirement.specifier), origin=origin))
    return found


def _pylock(path: Path, text: str) -> Imported:
    found = Imported(locked=True)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Imported(problems=[f"{path}: not valid TOML ({exc})"])
    if not str(data.get("lock-version", "")).startswith("1"):
        found.problems.append(f"{path}: not a PEP 751 lock file (lock-version 1.x missing)")
        return found
    for package in data.get("packages", []):
        name = str(canonicalize_name(str(package.get("name", ""))))
        if (
            "vcs" in package
            or "directory" in package
            or "archive" in package
            and "url" not in package.get("archive", {})
        ):
            found.problems.append(f"{path}: {name} comes from a VCS, a directory or an archive, not an index")
            continue
        version = package.get("version")
        if not version:
            found.problems.append(f"{path}: {name} has no version")
            continue
        found.pypi.append(PypiWanted(name, str(version), origin=f"{path}: {name}"))
    return found


def _uv_lock(path: Path, text: str) -> Imported:
    found = Imported(locked=True)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Imported(problems=[f"{path}: not valid TOML ({exc})"])
    for package in data.get("package", []):
        name = str(canonicalize_name(str(package.get("name", ""))))
        source = package.get("source", {})
        if "editable" in source or "virtual" in source:
            continue  # the project itself
        if "registry" not in source:
            found.problems.append(f"{path}: {name} comes from {', '.join(source) or 'no source'}, not an index")
            continue
        found.pypi.append(PypiWanted(name, str(package.get("version")), origin=f"{path}: {name}"))
    return found


def _environment_yml(path: Path, text: str) -> Imported:
    found = Imported()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Imported(problems=[f"{path}: not valid YAML ({exc})"])
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        return Imported(problems=[f"{path}: an environment.yml needs a 'dependencies:' list"])
    channels = [c for c in data.get("channels") or [] if isinstance(c, str)]
    lines = text.splitlines()
    for item in data["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            requirements = "\n".join(str(r) for r in item["pip"] or [])
            nested = _requirements_txt(path, requirements)
            found.pypi += nested.pypi
            found.problems += nested.problems
            continue
        spec = str(item)
        channel, _, bare = spec.rpartition("::")
        match = _CONDA_SPEC.match(bare)
        number = next((n for n, line in enumerate(lines, 1) if bare in line), 0)
        if match is None:
            found.problems.append(f"{path}:{number}: {spec!r} is not a conda spec NAME[=VERSION[=BUILD]]")
            continue
        name, version, build = match.groups()
        exact = (
            version.lstrip("=")
            if version and version.startswith("=") and not version.startswith("==")
            else (version[2:] if version and version.startswith("==") else None)
        )
        found.conda.append(
            CondaWanted(
                name.lower(),
                exact.rstrip("*").rstrip(".") if exact else None,
                build,
                channel or (channels[0] if len(channels) == 1 else None),
                f"{path}:{number}",
            )
        )
    return found


def _explicit_conda(path: Path, text: str) -> Imported:
    found = Imported(locked=True)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        parts = urlsplit(line.split("#", 1)[0])
        match = _CONDA_FILENAME.match(parts.path.rsplit("/", 1)[-1])
        if parts.scheme not in ("http", "https", "file") or match is None:
            found.problems.append(f"{path}:{number}: not a conda package URL")
            continue
        channel = parts.path.strip("/").split("/")[-3] if parts.path.count("/") >= 3 else None
        found.conda.append(CondaWanted(match["name"], match["version"], match["build"], channel, f"{path}:{number}"))
    return found


def compatible_range(version: str) -> str:
    """`--range compatible`: `2.3.1` -> `>=2.3.1,<3` (the same major); `0.4.2` -> `>=0.4.2,<0.5`."""
    try:
        release = Version(version).release
    except InvalidVersion:
        return f"=={version}"
    if release[0] == 0 and len(release) > 1:
        return f">={version},<0.{release[1] + 1}"
    return f">={version},<{release[0] + 1}"
