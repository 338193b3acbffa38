"""Benchmark: `airlock-gate scan --input image.tar` vs bare `trivy image` on the same tarball, in the
same run, and `airlock-gate db build` for 10,000 OSV advisories.

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
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.upstream.images import osv  # noqa: E402

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
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["python3"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"COPY site layer {n}"} for n in range(LAYERS)]}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    with tarfile.open(path, "w") as archive:
        _add(archive, config_name, config)
        names = []
        for number, data in enumerate(layers):
            names.append(f"layer{number}/layer.tar")
            _add(archive, names[-1], data)
        _add(archive, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["bench/app:1"], "Layers": names}]).encode())


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


def write_allowlists(folder: Path) -> None:
    folder.mkdir()
    entries = "\n".join(f"  - {{name: benchpkg{i}, environments: [prod], reason: bench, owner: bench}}" for i in range(PACKAGES))
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
        write_advisories(root / "advisories")
        began = time.perf_counter()
        timed([str(BIN / "airlock-gate"), "db", "build", "--advisories", str(root / "advisories"), "--out", str(root / "db")], dict(os.environ))
        db_build = time.perf_counter() - began
        write_allowlists(root / "allowlists")
        env = {**os.environ, "AIRLOCK_DATA_DIR": str(root / "data")}
        for label, module_bytes in SIZES.items():
            archive = root / f"image-{label}.tar"
            write_image(archive, module_bytes)
            gate = [str(BIN / "airlock-gate"), "scan", "--input", str(archive), "--env", "prod", "--allowlists", str(root / "allowlists"),
                    "--db", str(root / "db"), "--format", "json"]
            trivy = [str(BIN / "trivy"), "image", "--input", str(archive), "--cache-dir", str(root / "db"), "--cache-backend", "memory",
                     "--skip-db-update", "--skip-java-db-update", "--offline-scan", "--scanners", "vuln,secret", "--list-all-pkgs",
                     "--format", "json", "--output", str(root / "bare.json"), "--quiet"]
            timed(gate, env), timed(trivy, env)  # warm the page cache for both
            gate_times, trivy_times = [], []
            for _ in range(RUNS):
                trivy_times.append(timed(trivy, env))
                gate_times.append(timed(gate, env))
            found = json.loads((root / "bare.json").read_text())
            vulns = sum(len(r.get("Vulnerabilities") or []) for r in found.get("Results", []))
            bare, ours = statistics.median(trivy_times), statistics.median(gate_times)
            print(f"{label} image: {archive.stat().st_size / 1e6:.0f} MB docker-archive, {LAYERS} layers, {PACKAGES} Python packages, "
                  f"{vulns} vulnerabilities (LOW) found")
            print(f"  bare trivy image (same flags):  {bare:.3f} s   (median of {RUNS})")
            print(f"  airlock-gate scan --input:      {ours:.3f} s   = {ours / bare:.2f}x bare Trivy, +{ours - bare:.2f} s  (goal <= 1.10x)")
            archive.unlink()
        print(f"db build, {ADVISORIES:,} advisories:     {db_build:.3f} s   (including interpreter start)")


if __name__ == "__main__":
    main()
