"""The scanner role: Trivy, run as a subprocess, parsed into `gate.interface.ImageFacts`."""

from gate.scanner.trivy import SUPPORTED_TRIVY, Trivy, find_trivy

__all__ = ["SUPPORTED_TRIVY", "Trivy", "find_trivy"]
