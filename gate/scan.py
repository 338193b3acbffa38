"""`airlock-gate scan`: Trivy starts, then policy → DB check → image → checks → verdict → discard → record.

Only light modules are imported here: for an image archive, Trivy starts before the rest of the
gate (report models, policy, checks, HTTP and database code: ~0.1 s of imports on a CI machine's
cores) is loaded, so that loading overlaps the scan instead of adding to it. The rest is
`gate.decision`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from gate.archive import scannable
from gate.errors import GateError
from gate.scanner.process import TrivyRun, find_trivy, start_image_scan

if TYPE_CHECKING:
    from gate.interface import Verdict


class ScanRequest(NamedTuple):  # not a dataclass: `dataclasses` would load before Trivy starts
    environment: str
    image: str | None
    archive: Path | None
    allowlists: Path
    waivers: Path | None
    db: Path
    server: str | None
    token: str | None
    trivy: str | None
    timeout: float
    sbom: Path | None


def run_scan(request: ScanRequest) -> Verdict:
    """Every way of not knowing ends in `Outcome.UNDECIDED` with its cause (exit 2, nothing
    deploys); a failing image is discarded before the verdict is reported; every verdict is recorded."""
    scan: TrivyRun | None = None
    target: Path | None = None
    with tempfile.TemporaryDirectory(prefix="airlock-gate-") as workdir:
        raw = Path(workdir) / "trivy.json"
        try:
            try:
                binary = find_trivy(request.trivy)
                if request.archive:
                    target = scannable(request.archive, Path(workdir))
                    scan = start_image_scan(binary, target, request.db, raw, request.timeout)
            except GateError as exc:
                from gate.decision import record_undecided

                return record_undecided(request, str(exc))
            from gate.decision import decide_image  # loads while Trivy scans an archive

            return decide_image(request, binary, scan, target, Path(workdir), raw)
        finally:
            if scan is not None:
                scan.stop()
