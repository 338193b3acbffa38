"""The gate's checks; each turns `ImageFacts` into findings a developer can act on."""

from gate.checks.base_image import BaseImageCheck, match_base
from gate.checks.provenance import ProvenanceCheck
from gate.checks.secrets import SecretsCheck
from gate.checks.vulnerabilities import VulnerabilityCheck

ALL_CHECKS = (BaseImageCheck(), ProvenanceCheck(), VulnerabilityCheck(), SecretsCheck())

__all__ = ["ALL_CHECKS", "BaseImageCheck", "ProvenanceCheck", "SecretsCheck", "VulnerabilityCheck", "match_base"]
