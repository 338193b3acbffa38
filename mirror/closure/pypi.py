"""PyPI closure: resolve an environment's allowed entries with uv, for each target, against the
upstream as the environment's curated index serves it (`resolver_index`), and name what is missing.

uv is the resolver (markers, extras, `requires-python`, wheel tags per target are its business);
Airlock only says which files each project offers — exactly what the mirror would serve — and
reads uv's answer: the pinned set and, for each package, what pulled it in (`# via`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name

from mirror.closure.interface import ClosureError, ClosureReport, Missing, Unsatisfiable
from mirror.closure.resolver_index import ResolverIndex
from mirror.policy import Allowlist, Ecosystem
from mirror.policy.targets import Target

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*$")
_MAX_PARALLEL = 4


def uv_binary() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise ClosureError("uv is not installed in Airlock's environment (reinstall: scripts/run)")
    return found


def roots(allowlist: Allowlist, env: str) -> dict[str, str]:
    """The entries allowed in `env`: name -> owner (of the first rule that allows it)."""
    installable = set(allowlist.names(Ecosystem.PYPI, env))
    owners: dict[str, str] = {}
    for rule, state in allowlist.rules(Ecosystem.PYPI, env):
        if state == "allow" and rule.name in installable and rule.name not in owners:
            owners[rule.name] = rule.owner or "?"
    return owners


def pypi_closure(
    allowlist: Allowlist,
    env: str,
    targets: list[Target],
    upstream: str,
    cache: Path,
    requirements: dict[str, str] | None = None,
    page_ttl: float = 1800.0,
    timeout: float = 60.0,
) -> ClosureReport:
    """Resolve `requirements` (name -> owner; default: every entry allowed in `env`) per target."""
    started = time.monotonic()
    wanted = requirements if requirements is not None else roots(allowlist, env)
    if not wanted:
        return ClosureReport(env, "pypi", targets=tuple(map(str, targets)))

    def listed(name: str) -> bool:
        return allowlist.decide_name(Ecosystem.PYPI, env, name).allowed

    def allows(name: str, version: str) -> bool:
        return allowlist.decide(Ecosystem.PYPI, env, name, version).allowed

    missing: dict[str, dict] = {}
    unsatisfiable: dict[str, dict] = {}
    with ResolverIndex(upstream, cache, listed, allows, page_ttl=page_ttl, timeout=timeout) as index:
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(targets))) as pool:
            answers = list(
                pool.map(
                    lambda target: (target, _resolve_target(index, sorted(wanted), target, cache, timeout)), targets
                )
            )
        if index.failures:
            raise ClosureError(f"could not decide for {env}: {index.failures[0]}", list(index.failures))
        for target, (resolutions, failures) in answers:
            for entry, explanation in failures:
                found = unsatisfiable.setdefault(entry, {"targets": [], "explanation": explanation})
                found["targets"].append(str(target))
            for pins, via in resolutions:
                for name, version in pins.items():
                    if listed(name) and allows(name, version):
                        continue
                    chain = _chain(name, via, set(wanted))
                    parent = chain[-1] if chain else None
                    requirement = index.requirement_of(parent, pins[parent], name, target) if parent else None
                    found = missing.setdefault(
                        name,
                        {
                            "targets": [],
                            "version": version,
                            "chain": chain,
                            "pins": pins,
                            "requirement": requirement or name,
                        },
                    )
                    if str(target) not in found["targets"]:
                        found["targets"].append(str(target))
    report_missing = []
    for name, found in sorted(missing.items()):
        chain = tuple(f"{link} {found['pins'][link]}" for link in found["chain"])
        denial = allowlist.decide(Ecosystem.PYPI, env, name, found["version"])
        denied = denial.reason if denial.rule is not None and not denial.allowed else None
        report_missing.append(
            Missing(
                name,
                found["requirement"],
                chain,
                tuple(found["targets"]),
                found["version"],
                wanted.get(found["chain"][0]) if found["chain"] else None,
                denied,
            )
        )
    return ClosureReport(
        env,
        "pypi",
        tuple(report_missing),
        tuple(
            Unsatisfiable(entry, tuple(f["targets"]), f["explanation"]) for entry, f in sorted(unsatisfiable.items())
        ),
        tuple(map(str, targets)),
        len(wanted),
        time.monotonic() - started,
    )


def _resolve(
    index: ResolverIndex, requirements: list[str], target: Target, cache: Path, timeout: float
) -> tuple[dict[str, str], dict[str, list[str]], str | None]:
    """uv's pins and `# via` parents for `requirements` on `target`; or its error text."""
    command = [
        uv_binary(),
        "pip",
        "compile",
        "-",
        "--index-url",
        index.url,
        "--python-version",
        target.python,
        "--python-platform",
        target.uv_platform,
        "--no-header",
        "--annotation-style",
        "split",
        "--quiet",
        "--cache-dir",
        str(cache / "uv"),
        "--index-strategy",
        "first-index",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    try:
        result = subprocess.run(
            command,
            input="\n".join(requirements),
            capture_output=True,
            text=True,
            env=env,
            timeout=max(timeout * 10, 600),
        )
    except subprocess.TimeoutExpired:
        raise ClosureError(f"uv did not finish resolving for {target} within {max(timeout * 10, 600):.0f} s") from None
    if result.returncode != 0:
        return {}, {}, _uv_error(result.stderr)
    pins: dict[str, str] = {}
    via: dict[str, list[str]] = {}
    current = None
    for line in result.stdout.splitlines():
        pin = _PIN.match(line)
        if pin:
            current = str(canonicalize_name(pin.group(1)))
            pins[current] = pin.group(2)
            via[current] = []
            continue
        parent = _VIA.match(line)
        if parent and current is not None and parent.group(1) not in ("via", "-r"):
            via[current].append(str(canonicalize_name(parent.group(1))))
    return pins, via, None


def _chain(name: str, via: dict[str, list[str]], roots_: set[str]) -> list[str]:
    """The shortest chain from a root entry down to what needs `name` directly."""
    queue = deque([[name]])
    seen = {name}
    while queue:
        path = queue.popleft()
        if path[-1] in roots_ and len(path) > 1:
            return list(reversed(path[1:]))
        for parent in via.get(path[-1], []):
            if parent not in seen:
                seen.add(parent)
                queue.append(path + [parent])
    return []


def _uv_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    return " ".join(lines)[:1500] or "uv could not resolve (no message)"


def _resolve_target(
    index: ResolverIndex, requirements: list[str], target: Target, cache: Path, timeout: float
) -> tuple[list[tuple[dict, dict]], list[tuple[str, str]]]:
    """Every entry together; when they cannot be installed together, each alone — entries that only
    conflict with each other are not a closure problem, one that cannot be installed at all is."""
    pins, via, error = _resolve(index, requirements, target, cache, timeout)
    if error is None:
        return [(pins, via)], []
    if len(requirements) == 1:
        return [], [(requirements[0], error)]
    resolutions, failures = [], []
    with ThreadPoolExecutor(max_workers=_MAX_PARALLEL) as pool:
        for name, (alone_pins, alone_via, alone) in zip(
            requirements, pool.map(lambda r: _resolve(index, [r], target, cache, timeout), requirements), strict=True
        ):
            if alone is None:
                resolutions.append((alone_pins, alone_via))
            else:
                failures.append((name, alone))
    return resolutions, failures
