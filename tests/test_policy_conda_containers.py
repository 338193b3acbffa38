"""Conda MatchSpecs with build strings; container tags vs digests; approved exceptions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mirror.policy import Ecosystem, ExceptionGrant
from tests.conftest import NOW, allowlist_from

CONDA = """\
ecosystem: conda
environments: {prod: {}, preprod: {extends: prod}}
channels:
  conda-forge: {url: https://conda.anaconda.org/conda-forge}
deny:
  - {spec: "pytorch 2.6.0", reason: broken}
packages:
  - spec: "pytorch >=2.3 *cuda*"
    environments: [prod]
    reason: gpu training
    owner: ml
  - spec: "numpy >=1.26,<3"
    environments: [prod]
    reason: numerics
    owner: ml
  - spec: "python 3.11.*"
    environments: [prod]
    reason: interpreter
    owner: ml
  - spec: "pytorch >=2.3 cpu_*"
    environments: [preprod]
    reason: cpu experiments
    owner: ml
  - {spec: "TQDM", environments: [prod], reason: progress bars, owner: ml}
  - {spec: "scipy[build_number=3]", environments: [prod], reason: a pinned rebuild, owner: ml}
"""

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
CONTAINERS = f"""\
ecosystem: containers
environments: {{prod: {{}}, preprod: {{extends: prod}}}}
upstreams: {{mar: {{url: https://mcr.microsoft.com}}}}
deny:
  - {{image: mar/azureml/openmpi4.1.0-ubuntu22.04, tags: ["2024-bad"], reason: broken build}}
  - {{image: mar/evil/miner, reason: cryptominer}}
images:
  - image: mar/azureml/openmpi4.1.0-ubuntu22.04
    tags: ["2024*", "latest"]
    digests: ["{DIGEST_A}"]
    environments: [prod]
    reason: base
    owner: ml
  - image: mar/azureml/pinned-only
    digests: ["{DIGEST_B}"]
    environments: [prod]
    reason: pinned base
    owner: ml
  - image: mar/evil/miner
    tags: ["*"]
    environments: [prod]
    reason: mistakenly added
    owner: ml
"""


@pytest.fixture(scope="module")
def allowlist():
    return allowlist_from(("allowlists/conda.yaml", CONDA), ("allowlists/containers.yaml", CONTAINERS))


@pytest.mark.parametrize(
    ("name", "version", "build", "allowed"),
    [
        ("pytorch", "2.4.0", "cuda118_py311h1234_0", True),
        ("pytorch", "2.4.0", "cpu_py311h1234_0", False),
        ("pytorch", "2.2.0", "cuda118_py311h1234_0", False),
        ("pytorch", "2.6.0", "cuda118_py311h1234_0", False),
        ("numpy", "1.26.4", "py311h_0", True),
        ("numpy", "3.0.0", "py311h_0", False),
        ("python", "3.11.9", "h955ad1f_0_cpython", True),
        ("python", "3.12.1", "h955ad1f_0_cpython", False),
        ("NumPy", "2.0.1", None, True),
        ("tqdm", "4.66.1", "pyhd8ed1ab_0", True),  # a bare name: any valid version and build
        ("tqdm", "0.0.1a1", None, True),
        ("tqdm", "1..0", "pyhd8ed1ab_0", False),  # but not something that is no conda version
        ("scipy", "1.14.1", "py311_0", False),  # a bracket constraint is a constraint (the question has build number 0)
    ],
)
def test_conda_match_specs_see_name_version_and_build(allowlist, name, version, build, allowed):
    assert allowlist.decide("conda", "prod", name, version, build).allowed is allowed


def test_conda_build_string_blocks_say_which_spec(allowlist):
    decision = allowlist.decide("conda", "prod", "pytorch", "2.4.0", "cpu_py311h1234_0")
    assert decision.reason.startswith(
        "blocked: pytorch 2.4.0=cpu_py311h1234_0 does not match the spec '>=2.3 *cuda*' (the prod entry is allowlists/conda.yaml:8)"
    )
    assert allowlist.decide("conda", "preprod", "pytorch", "2.4.0", "cpu_py311h1234_0").allowed
    denied = allowlist.decide("conda", "preprod", "pytorch", "2.6.0", "cuda118_0")
    assert not denied.allowed and denied.rule == "allowlists/conda.yaml:6"


def test_a_version_conda_cannot_parse_is_named_as_such(allowlist):
    reason = allowlist.decide("conda", "prod", "numpy", "1..0", None).reason
    assert reason.startswith(
        "blocked: numpy '1..0' is not a valid conda version (the prod entry is allowlists/conda.yaml:12)"
    )


def test_conda_channel_limits_the_entry(allowlist):
    assert allowlist.decide("conda", "prod", "numpy", "1.26.4", "0", channel="conda-forge").allowed
    assert not allowlist.decide("conda", "prod", "numpy", "1.26.4", "0", channel="bioconda").allowed


@pytest.mark.parametrize(
    ("reference", "allowed"),
    [
        ("20240501", True),
        ("latest", True),
        ("2023.1", False),
        (DIGEST_A, True),
        (DIGEST_B, False),
        ("sha256:" + "c" * 64, False),
        ("2024-bad", False),
    ],
)
def test_image_tags_match_globs_and_digests_must_be_pinned(allowlist, reference, allowed):
    assert allowlist.decide("containers", "prod", "mar/azureml/openmpi4.1.0-ubuntu22.04", reference).allowed is allowed


def test_digest_only_entry_and_messages(allowlist):
    assert allowlist.decide("containers", "prod", "mar/azureml/pinned-only", DIGEST_B).allowed
    tag = allowlist.decide("containers", "prod", "mar/azureml/pinned-only", "latest")
    assert tag.reason.startswith(
        "blocked: mar/azureml/pinned-only:latest matches none of the entry's tag globs (1 pinned digest)"
    )
    digest = allowlist.decide("containers", "prod", "mar/azureml/openmpi4.1.0-ubuntu22.04", DIGEST_B)
    assert digest.reason.startswith(
        f"blocked: mar/azureml/openmpi4.1.0-ubuntu22.04@{DIGEST_B} is not pinned by the entry"
    )


def test_image_deny_without_tags_covers_every_tag_and_digest(allowlist):
    for reference in ("latest", DIGEST_A):
        decision = allowlist.decide("containers", "preprod", "mar/evil/miner", reference)
        assert not decision.allowed and "cryptominer" in decision.reason


def grant(ecosystem, package, versions, envs=("prod",), expires_in=timedelta(days=30), grant_id="17"):
    return ExceptionGrant(
        grant_id, Ecosystem(ecosystem), package, versions, frozenset(envs), NOW + expires_in, "lead@churn", "churn"
    )


PYPI = "ecosystem: pypi\nenvironments: {prod: {}, preprod: {extends: prod}}\ndeny:\n  - {name: evil, reason: malware}\npackages: []\n"


def test_approved_exception_allows_and_is_cited():
    allowlist = allowlist_from(("allowlists/pypi.yaml", PYPI), grants=[grant("pypi", "LightGBM", ">=4.3,<5")])
    decision = allowlist.decide("pypi", "preprod", "lightgbm", "4.3.0")
    assert decision.allowed
    assert decision.rule == "exception 17"
    assert decision.reason == "allowed by exception 17 (lightgbm >=4.3,<5, owner churn)"
    assert not allowlist.decide("pypi", "prod", "lightgbm", "5.0").allowed


def test_expired_exception_allows_nothing_and_says_so():
    allowlist = allowlist_from(
        ("allowlists/pypi.yaml", PYPI), grants=[grant("pypi", "lightgbm", None, expires_in=-timedelta(seconds=1))]
    )
    decision = allowlist.decide("pypi", "prod", "lightgbm", "4.3.0")
    assert not decision.allowed
    assert "exception 17 (lightgbm any release, owner churn) expired on" in decision.reason


def test_deny_beats_an_exception():
    allowlist = allowlist_from(("allowlists/pypi.yaml", PYPI), grants=[grant("pypi", "evil", None)])
    assert not allowlist.decide("pypi", "prod", "evil", "1.0").allowed


def test_exceptions_for_conda_and_images():
    allowlist = allowlist_from(
        ("allowlists/conda.yaml", CONDA),
        ("allowlists/containers.yaml", CONTAINERS),
        grants=[
            grant("conda", "lightgbm >=4.3", None, grant_id="c1"),
            grant("containers", "mar/azureml/extra", "2025*", grant_id="i1"),
            grant("containers", "mar/azureml/extra2", DIGEST_B, grant_id="i2"),
        ],
    )
    assert allowlist.decide("conda", "prod", "lightgbm", "4.3.0", "py_0").rule == "exception c1"
    assert allowlist.decide("containers", "prod", "mar/azureml/extra", "20250101").allowed
    assert not allowlist.decide("containers", "prod", "mar/azureml/extra", "2024").allowed
    assert allowlist.decide("containers", "prod", "mar/azureml/extra2", DIGEST_B).allowed
