"""The package a person asks about, as `explain` and the web UI's search take it: `numpy==2.0.1`,
`pytorch=2.4.0=cuda118_py311_0`, `mar/azureml/base:2024`; parsed precisely, with the form expected
named in every error."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirror.policy.interface import Ecosystem
from mirror.policy.pypi import parse_version

_PYPI_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)\s*$")
_CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9_.+-]*)=([^=\s]+)(?:=([^=\s]+))?\s*$")
_IMAGE_SPEC = re.compile(r"^\s*([a-z0-9._/-]+?)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(sha256:[a-f0-9]{64}))\s*$")
SPEC_FORMS = {
    Ecosystem.PYPI: "NAME==VERSION, e.g. numpy==2.0.1",
    Ecosystem.CONDA: "NAME=VERSION[=BUILD], e.g. pytorch=2.3.1=cuda118_py311_0",
    Ecosystem.CONTAINERS: "UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@sha256:DIGEST, e.g. mar/azureml/openmpi4.1.0-ubuntu22.04:20240501",
}


@dataclass(frozen=True)
class Question:
    ecosystem: Ecosystem
    name: str
    version: str
    build: str | None = None


def parse_spec(ecosystem: Ecosystem, spec: str) -> Question:
    """Parse explain's SPEC; raise ValueError naming the expected form."""
    if ecosystem is Ecosystem.PYPI:
        match = _PYPI_SPEC.match(spec)
        if match and parse_version(match.group(2)) is None:
            # No entry or exception can admit it (the mirror serves PEP 440 versions only), so no
            # exception request is suggested for it either.
            raise ValueError(
                f"bad SPEC {spec!r} for pypi: {match.group(2)!r} is not a PEP 440 version "
                f"(Airlock serves PEP 440 versions only); write {SPEC_FORMS[ecosystem]}"
            )
        if match:
            return Question(ecosystem, match.group(1), match.group(2))
    elif ecosystem is Ecosystem.CONDA:
        match = _CONDA_SPEC.match(spec)
        if match:
            return Question(ecosystem, match.group(1), match.group(2), match.group(3))
    else:
        match = _IMAGE_SPEC.match(spec)
        if match:
            return Question(ecosystem, match.group(1), match.group(2) or match.group(3))
    raise ValueError(f"bad SPEC {spec!r} for {ecosystem.value}: write {SPEC_FORMS[ecosystem]}")
