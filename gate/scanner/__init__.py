"""The scanner role: Trivy, started as a subprocess (`process`, import-light) and its report parsed
into `gate.interface.ImageFacts` (`trivy`, `models`)."""
