"""Benchmark against the public PyPI: what a new user sees, through Airlock and straight from PyPI.

1. Installs: `uv pip install` and `pip install` of `pandas scikit-learn` (the dependency-closed set,
   pinned for CPython 3.11 on Linux x86_64, is the allowlist) into a fresh venv with empty client
   caches — straight from the upstream, through Airlock on a fresh data dir (cold), and through the
   same Airlock again (its caches warm). Goals (issue 17): cold <= 1.5x direct, warm <= 1.1x direct.
2. Metadata: resolution of a project with many versions (`boto3` with an older `botocore`: the
   resolvers walk back ~20 boto3 releases, reading each one's metadata), with `uv pip compile` and
   `pip install --dry-run`, through Airlock with AIRLOCK_PYPI_METADATA=upstream (metadata only where
   the upstream serves it: the PyPI reachable here serves none, so clients read the wheels) and
   =extract (Airlock reads METADATA from the wheels and serves it), cold and warm.

Direct runs come before and after Airlock's, and their mean is the baseline (the network drifts).
Needs the public PyPI; not part of the test suite.

    .venv/bin/python bench/pypi_real.py [--skip-install] [--skip-metadata]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.servers import AirlockProcess
from testkit.worlds import BIN, client_env, fresh_venv

PYPI = "https://pypi.org/simple/"
PACKAGES = ["pandas", "scikit-learn"]
TARGET = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]


def run(command: list[str], tmp: Path, cache: Path) -> float:
    env = {**client_env(tmp), "UV_CACHE_DIR": str(cache)}
    began = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} … failed:\n{result.stderr[-3000:]}")
    return elapsed


def install(client: str, index: str, requirements: list[str], tmp: Path, label: str) -> float:
    """One install into a fresh venv with empty client caches."""
    work = Path(tempfile.mkdtemp(prefix=f"{client}-{label}-", dir=tmp))
    python = fresh_venv(work / "venv")
    if client == "uv":
        command = [str(BIN / "uv"), "pip", "install", "--python", str(python), "--index-url", index, *requirements]
    else:
        command = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--index-url",
            index,
            *requirements,
        ]
    return run(command, work, work / "uv-cache")


def resolve(client: str, index: str, requirements: list[str], tmp: Path, label: str) -> float:
    """Resolution only (no install), empty client caches."""
    work = Path(tempfile.mkdtemp(prefix=f"{client}-{label}-", dir=tmp))
    if client == "uv":
        command = [str(BIN / "uv"), "pip", "compile", "-", "--index-url", index, *TARGET, "--no-header", "-q"]
        env = {**client_env(work), "UV_CACHE_DIR": str(work / "uv-cache")}
        began = time.perf_counter()
        result = subprocess.run(
            command, input="\n".join(requirements), env=env, capture_output=True, text=True, timeout=1800
        )
        if result.returncode != 0:
            raise SystemExit(f"uv pip compile failed:\n{result.stderr[-3000:]}")
        return time.perf_counter() - began
    python = fresh_venv(work / "venv")
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--dry-run",
        "--no-cache-dir",
        "--ignore-installed",
        "--index-url",
        index,
        *requirements,
    ]
    return run(command, work, work / "uv-cache")


def pins(requirements: list[str], tmp: Path) -> dict[str, str]:
    """The dependency-closed set, pinned, as uv resolves it straight from PyPI."""
    env = {**client_env(tmp), "UV_CACHE_DIR": str(tmp / "uv-pins")}
    result = subprocess.run(
        [str(BIN / "uv"), "pip", "compile", "-", "--index-url", PYPI, *TARGET, "--no-header", "--no-annotate", "-q"],
        input="\n".join(requirements),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(line.split("==", 1) for line in result.stdout.split() if "==" in line)


def allowlist(folder: Path, entries: dict[str, str | None]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["ecosystem: pypi", "environments: {prod: {}}", "packages:"]
    for name, version in sorted(entries.items()):
        versions = f', versions: "=={version}"' if version else ""
        lines.append(f"  - {{name: {name}{versions}, environments: [prod], reason: bench, owner: bench}}")
    (folder / "pypi.yaml").write_text("\n".join(lines) + "\n")
    return folder


def airlock(tmp: Path, allowlists: Path, label: str, **env: str) -> AirlockProcess:
    work = tmp / f"airlock-{label}"
    return AirlockProcess(
        work, {"AIRLOCK_DATA_DIR": str(work / "data"), "AIRLOCK_ALLOWLISTS": str(allowlists), **env}
    ).start()


def ratio_line(label: str, seconds: float, baseline: float, goal: str = "") -> str:
    return f"  {label:<42} {seconds:6.2f} s = {seconds / baseline:.2f}x direct{goal}"


def bench_installs(tmp: Path) -> None:
    closure = pins(PACKAGES, tmp)
    folder = allowlist(tmp / "allowlists-install", closure)
    print(
        f"installs of {' '.join(PACKAGES)} ({len(closure)} packages with dependencies), fresh venv, empty client caches:"
    )
    for client in ("uv", "pip"):
        first = install(client, PYPI, PACKAGES, tmp, "direct1")
        service = airlock(tmp, folder, f"install-{client}")
        try:
            index = f"{service.url}/pypi/prod/simple/"
            cold = install(client, index, PACKAGES, tmp, "cold")
            warm = install(client, index, PACKAGES, tmp, "warm")
        finally:
            service.stop()
        second = install(client, PYPI, PACKAGES, tmp, "direct2")
        direct = statistics.mean([first, second])
        print(
            f"  {client} straight from PyPI:                    {direct:6.2f} s   (runs {first:.2f} s and {second:.2f} s)"
        )
        print(ratio_line(f"{client} through Airlock, cold data dir:", cold, direct, "   (goal <= 1.5x)"))
        print(ratio_line(f"{client} through Airlock, its caches warm:", warm, direct, "   (goal <= 1.1x)"))


def many_versions() -> list[str]:
    """`boto3` and a `botocore` 20 releases old: each boto3 pins one botocore, so the resolver
    reads the metadata of ~20 boto3 releases before it finds one that fits."""
    page = httpx.get(f"{PYPI}botocore/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60).json()
    released = sorted((Version(v) for v in page["versions"] if not Version(v).is_prerelease), reverse=True)
    return ["boto3", f"botocore<={released[20]}"]


def bench_metadata(tmp: Path) -> None:
    requirements = many_versions()
    names = {
        "boto3": None,
        "botocore": None,
        "jmespath": None,
        "s3transfer": None,
        "python-dateutil": None,
        "six": None,
        "urllib3": None,
    }
    folder = allowlist(tmp / "allowlists-metadata", names)
    print(f"\nresolution of {' '.join(requirements)} (many versions), empty client caches, by AIRLOCK_PYPI_METADATA:")
    for client in ("uv", "pip"):
        first = resolve(client, PYPI, requirements, tmp, "direct1")
        results = {}
        for mode in ("upstream", "extract"):
            service = airlock(tmp, folder, f"metadata-{client}-{mode}", AIRLOCK_PYPI_METADATA=mode)
            try:
                index = f"{service.url}/pypi/prod/simple/"
                results[mode] = (
                    resolve(client, index, requirements, tmp, f"{mode}-cold"),
                    resolve(client, index, requirements, tmp, f"{mode}-warm"),
                )
            finally:
                service.stop()
        second = resolve(client, PYPI, requirements, tmp, "direct2")
        direct = statistics.mean([first, second])
        print(
            f"  {client} straight from PyPI:                    {direct:6.2f} s   (runs {first:.2f} s and {second:.2f} s)"
        )
        for mode, (cold, warm) in results.items():
            print(ratio_line(f"{client} metadata={mode}, cold:", cold, direct))
            print(ratio_line(f"{client} metadata={mode}, warm:", warm, direct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--skip-metadata", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pypi-real-") as tmp:
        if not args.skip_install:
            bench_installs(Path(tmp))
        if not args.skip_metadata:
            bench_metadata(Path(tmp))


if __name__ == "__main__":
    main()
