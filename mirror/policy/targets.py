"""Resolution targets: the interpreters and platforms an environment's packages must install on.

Declared per environment in a PyPI allowlist file and inherited through `extends`:

    environments:
      prod: {targets: {python: ["3.10", "3.11", "3.12"], platforms: [manylinux_2_28_x86_64]}}
      preprod: {extends: prod}

`airlock allowlist closure` resolves every allowed entry for each (python, platform) pair. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PYTHON = re.compile(r"^3\.(\d{1,2})$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(x86_64|aarch64)$")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_(x86_64|aarch64)$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(x86_64|arm64)$")
_WINDOWS = {"win_amd64": "x86_64-pc-windows-msvc", "win_arm64": "aarch64-pc-windows-msvc"}
TARGET_KEYS = frozenset({"python", "platforms"})


@dataclass(frozen=True)
class Target:
    """One interpreter on one platform, as a wheel tag names the platform."""

    python: str
    """`3.11`."""
    platform: str
    """A wheel platform tag: `manylinux_2_28_x86_64`, `musllinux_1_2_x86_64`, `macosx_11_0_arm64`, `win_amd64`."""

    def __str__(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platform}"

    @property
    def uv_platform(self) -> str:
        """The same platform as uv's `--python-platform` names it."""
        return uv_platform(self.platform)

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker variables on this target (CPython; a `.0` patch where only X.Y is known)."""
        system, machine = {
            "manylinux": ("Linux", "linux"),
            "musllinux": ("Linux", "linux"),
            "macosx": ("Darwin", "darwin"),
            "win": ("Windows", "win32"),
        }[self.platform.split("_", 1)[0]]
        found = re.search(r"(x86_64|aarch64|arm64)$", self.platform)
        arch = "AMD64" if self.platform == "win_amd64" else (found.group(1) if found else "")
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "platform_system": system,
            "sys_platform": machine,
            "platform_machine": "x86_64" if arch == "x86_64" else arch,
            "os_name": "nt" if system == "Windows" else "posix",
            "platform_release": "",
            "platform_version": "",
            "implementation_version": f"{self.python}.0",
        }


@dataclass(frozen=True)
class Targets:
    python: tuple[str, ...]
    platforms: tuple[str, ...]

    def each(self) -> list[Target]:
        return [Target(python, platform) for python in self.python for platform in self.platforms]


DEFAULT_TARGETS = Targets(python=("3.11",), platforms=("manylinux_2_28_x86_64",))
"""CPython 3.11 on Linux x86_64 (glibc 2.28: Debian 10+, RHEL 8+, Ubuntu 20.04+)."""


def uv_platform(tag: str) -> str:
    for pattern, render in (
        (_MANYLINUX, "{2}-manylinux_{0}_{1}"),
        (_MUSLLINUX, "{2}-unknown-linux-musl"),
        (_MACOS, "{2}-apple-darwin"),
    ):
        match = pattern.match(tag)
        if match:
            return render.format(*(g.replace("arm64", "aarch64") for g in match.groups()))
    if tag in _WINDOWS:
        return _WINDOWS[tag]
    raise ValueError(f"unknown platform tag {tag!r}")


def read_targets(raw: Any, error: Callable[[tuple[str, ...], str], None]) -> Targets | None:
    """Validate an environment's `targets:` mapping; `error(path, message)` reports each problem."""
    if not isinstance(raw, dict):
        error((), "'targets' must be a mapping like {python: [\"3.11\"], platforms: [manylinux_2_28_x86_64]}")
        return None
    for key in raw.keys() - TARGET_KEYS:
        error((key,), f"unknown key {key!r} in targets (use python, platforms)")
    pythons = raw.get("python", list(DEFAULT_TARGETS.python))
    platforms = raw.get("platforms", list(DEFAULT_TARGETS.platforms))
    good = True
    if (
        not isinstance(pythons, list)
        or not pythons
        or not all(isinstance(p, str) and _PYTHON.match(p) for p in pythons)
    ):
        error(("python",), '\'python\' must list CPython versions as strings, e.g. ["3.10", "3.11"]')
        good = False
    if not isinstance(platforms, list) or not platforms:
        error(("platforms",), "'platforms' must list wheel platform tags, e.g. [manylinux_2_28_x86_64]")
        return None
    for platform in platforms:
        try:
            uv_platform(str(platform))
        except ValueError:
            error(
                ("platforms",),
                f"unknown platform tag {platform!r}: use manylinux_X_Y_ARCH, musllinux_X_Y_ARCH, "
                "macosx_X_Y_ARCH or win_amd64",
            )
            good = False
    return Targets(tuple(pythons), tuple(str(p) for p in platforms)) if good else None
