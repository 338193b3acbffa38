"""Benchmark: `airlock-gate scan --input image.tar` vs bare `trivy image` on the same tarball, in the
same run, and `airlock-gate db build` for 10,000 OSV advisories and for an osv.dev-sized export
(20,000 GHSA and PYSEC records, merged; goal <= 10 s, peak memory printed).

Two images (docker-archives written here, no engine needed), each with 400 Python distributions laid
out as pip installs them over 4 layers and packages with vulnerabilities below the prod threshold
(so the gate passes and keeps the archive): a small one (~60 MB of modules) and one the size of a
slim ML solution image (~600 MB). The gate's fixed cost (interpreter, imports, policy, parsing
Trivy's report, 2,400 findings, the audit write: ~0.25 s of CPU, part of it while Trivy scans) weighs
on the first and fades on the second. Bare Trivy runs with the gate's own flags. Median of 9 runs
each, interleaved. Goal (issue 6): <= 1.10x.

    .venv/bin/python bench/gate.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate.scanner.process import offline_json_args
from testkit.images import osv

BIN = Path(sys.executable).parent
PACKAGES = 400
LAYERS = 4
SIZES = {"small": 150_000, "ML-sized": 1_500_000}
"""Bytes of module code per package."""
ADVISORIES = 10_000
RUNS = 9


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
    archive.addfile(info, io.BytesIO(data))


def write_image(path: Path, module_bytes: int) -> None:
    """A docker-archive (what `docker save` writes) with LAYERS layers of site-packages."""
    layers = []
    for number in range(LAYERS):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as layer:
            for index in range(number, PACKAGES, LAYERS):
                name, site = f"benchpkg{index}", "usr/local/lib/python3.11/site-packages"
                info = f"{site}/{name}-1.0.dist-info"
                _add(layer, f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode())
                _add(layer, f"{info}/RECORD", f"{name}/__init__.py,,\n".encode())
                _add(layer, f"{info}/INSTALLER", b"pip\n")
                _add(layer, f"{site}/{name}/__init__.py", _module(module_bytes))
        layers.append(buffer.getvalue())
    diff_ids = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["python3"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"COPY site layer {n}"} for n in range(LAYERS)],
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    with tarfile.open(path, "w") as archive:
        _add(archive, config_name, config)
        names = []
        for number, data in enumerate(layers):
            names.append(f"layer{number}/layer.tar")
            _add(archive, names[-1], data)
        _add(
            archive,
            "manifest.json",
            json.dumps([{"Config": config_name, "RepoTags": ["bench/app:1"], "Layers": names}]).encode(),
        )


def _module(size: int) -> bytes:
    body = "\n".join(f"value_{i} = {i * 7919 % 100003}  # computed table entry" for i in range(size // 40 + 1)).encode()
    return body[:size]


def write_advisories(folder: Path) -> None:
    folder.mkdir()
    severities = ("LOW", "MODERATE", "HIGH", "CRITICAL")
    for index in range(ADVISORIES):
        # Every installed benchpkg gets LOW advisories only (shown, not blocking); the rest hit other names.
        package = f"benchpkg{index % PACKAGES}" if index % 5 == 0 else f"otherpkg{index}"
        severity = "LOW" if package.startswith("benchpkg") else severities[index % 4]
        document = osv(f"GHSA-bench-{index:05d}", package, "2.0", severity, cve=f"CVE-2026-{100000 + index}")
        (folder / f"{index}.json").write_text(json.dumps(document))


EXPORT_RECORDS = 20_000
"""About the PyPI share of an osv.dev export: GHSA records and, for most, a PYSEC twin."""


def write_osv_export(folder: Path) -> int:
    """Records shaped like tests/fixtures/advisories: GHSA records with one `affected` entry per
    release branch and GitHub's rating; PYSEC twins with unsorted events, a `versions` list and no
    rating; some `last_affected`, some CVSS v4 only, some withdrawn. Returns how many were written."""
    folder.mkdir()
    written = 0
    for index in range(EXPORT_RECORDS // 2 + EXPORT_RECORDS // 10):
        if written >= EXPORT_RECORDS:
            break
        package, cve, ghsa = f"pkg{index % 4000}", f"CVE-2024-{10000 + index}", f"GHSA-{index:04x}-exp0-rt00"
        branches = [(f"{major}.0", f"{major}.{index % 9 + 1}") for major in range(1, 2 + index % 3)]
        affected = [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": low}, {"fixed": high}]}],
            }
            for low, high in branches
        ]
        severity = (
            [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]
            if index % 7 == 0
            else [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
        )
        github = {
            "id": ghsa,
            "aliases": [cve],
            "summary": f"{package} mishandles input",
            "details": f"{package} before the fix mishandles input.",
            "severity": severity,
            "affected": affected,
            "references": [{"type": "ADVISORY", "url": f"https://nvd.nist.gov/vuln/detail/{cve}"}],
            "database_specific": {"severity": ("LOW", "MODERATE", "HIGH", "CRITICAL")[index % 4]} if index % 7 else {},
        }
        (folder / f"{ghsa}.json").write_text(json.dumps(github))
        written += 1
        if index % 5 == 4 or written >= EXPORT_RECORDS:
            continue
        events = [event for low, high in reversed(branches) for event in ({"introduced": low}, {"fixed": high})]
        if index % 11 == 0:
            events = [{"introduced": "0"}, {"last_affected": branches[-1][1]}]
        versions = [
            f"{low.split('.')[0]}.{minor}" for low, high in branches for minor in range(0, int(high.split(".")[1]))
        ]
        pysec = {
            "id": f"PYSEC-2024-{index}",
            "aliases": [cve, ghsa],
            "details": f"An issue was found in {package}. It is bad.",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": package, "purl": f"pkg:pypi/{package}"},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "versions": versions,
                }
            ],
        }
        if index % 97 == 0:
            pysec["withdrawn"] = "2024-06-01T00:00:00Z"
        (folder / f"PYSEC-2024-{index}.json").write_text(json.dumps(pysec))
        written += 1
    return written


def measure_db_build_at_scale(root: Path) -> None:
    written = write_osv_export(root / "export")
    command = [
        str(BIN / "airlock-gate"),
        "db",
        "build",
        "--advisories",
        str(root / "export"),
        "--out",
        str(root / "export-db"),
    ]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"db build of the export failed: {result.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = result.stdout.strip().splitlines()[-1].split(" in ")[0].split(": ", 1)[1]
    print(
        f"db build, osv.dev-sized export ({written:,} records): {elapsed:.2f} s, peak memory {peak:.0f} MiB   (goal <= 10 s)"
    )
    print(f"  {summary}")


def write_allowlists(folder: Path) -> None:
    folder.mkdir()
    entries = "\n".join(
        f"  - {{name: benchpkg{i}, environments: [prod], reason: bench, owner: bench}}" for i in range(PACKAGES)
    )
    (folder / "pypi.yaml").write_text(f"ecosystem: pypi\nenvironments: {{prod: {{}}}}\npackages:\n{entries}\n")


def timed(command: list[str], env: dict[str, str], expect: int = 0) -> float:
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - began
    if result.returncode != expect:
        raise SystemExit(f"{command[0]} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        measure_db_build_at_scale(root)  # first: peak memory is the largest child's so far
        write_advisories(root / "advisories")
        began = time.perf_counter()
        timed(
            [
                str(BIN / "airlock-gate"),
                "db",
                "build",
                "--advisories",
                str(root / "advisories"),
                "--out",
                str(root / "db"),
            ],
            dict(os.environ),
        )
        db_build = time.perf_counter() - began
        write_allowlists(root / "allowlists")
        env = {**os.environ, "AIRLOCK_DATA_DIR": str(root / "data")}
        for label, module_bytes in SIZES.items():
            archive = root / f"image-{label}.tar"
            write_image(archive, module_bytes)
            gate = [
                str(BIN / "airlock-gate"),
                "scan",
                "--input",
                str(archive),
                "--env",
                "prod",
                "--allowlists",
                str(root / "allowlists"),
                "--db",
                str(root / "db"),
                "--format",
                "json",
            ]
            # Bare Trivy with the very arguments the gate gives it (one helper builds both).
            trivy = [
                str(BIN / "trivy"),
                "image",
                "--input",
                str(archive),
                *offline_json_args(root / "db", root / "bare.json", "vuln,secret"),
                "--list-all-pkgs",
            ]
            timed(gate, env), timed(trivy, env)  # warm the page cache for both
            gate_times, trivy_times = [], []
            for _ in range(RUNS):
                trivy_times.append(timed(trivy, env))
                gate_times.append(timed(gate, env))
            found = json.loads((root / "bare.json").read_text())
            vulns = sum(len(r.get("Vulnerabilities") or []) for r in found.get("Results", []))
            bare, ours = statistics.median(trivy_times), statistics.median(gate_times)
            print(
                f"{label} image: {archive.stat().st_size / 1e6:.0f} MB docker-archive, {LAYERS} layers, {PACKAGES} Python packages, "
                f"{vulns} vulnerabilities (LOW) found"
            )
            print(f"  bare trivy image (same flags):  {bare:.3f} s   (median of {RUNS})")
            print(
                f"  airlock-gate scan --input:      {ours:.3f} s   = {ours / bare:.2f}x bare Trivy, +{ours - bare:.2f} s  (goal <= 1.10x)"
            )
            archive.unlink()
        print(f"db build, {ADVISORIES:,} advisories:     {db_build:.3f} s   (including interpreter start)")


if __name__ == "__main__":
    main()
