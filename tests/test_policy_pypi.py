"""PyPI decisions: names, specifiers, pre-releases, local versions, deny, extends, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mirror.policy import UnknownEnvironment
from tests.conftest import NOW, allowlist_from

PYPI = """\
ecosystem: pypi
environments:
  prod: {}
  preprod: {extends: prod}
  dev: {extends: preprod}
deny:
  - {name: reqeusts, reason: typosquat}
  - {name: torch, versions: "==2.6.0", reason: broken kernels}
packages:
  - name: Foo.Bar
    versions: ">=1.0,<2"
    environments: [prod]
    reason: tests name spellings
    owner: team-a
  - name: torch
    versions: ">=2.3,<3"
    environments: [prod]
    reason: training
    owner: ml-platform
  - name: nightly
    versions: ">=1.0"
    prereleases: true
    environments: [prod]
    reason: needs release candidates
    owner: team-b
  - name: exact
    versions: "==1.4.2"
    environments: [prod]
    reason: pinned
    owner: team-b
  - name: lightgbm
    environments: [preprod]
    reason: trial
    owner: churn
  - name: scratchpad
    environments: [dev]
    reason: dev only
    owner: churn
  - name: retired
    environments: [prod]
    reason: being phased out
    owner: team-c
    expires: 2026-11-27
  - name: lastday
    environments: [prod]
    reason: ends today
    owner: team-c
    expires: 2026-11-28
  - name: reqeusts
    environments: [prod]
    reason: someone added the typo by mistake
    owner: team-c
"""


@pytest.fixture(scope="module")
def allowlist():
    return allowlist_from(("allowlists/pypi.yaml", PYPI))


@pytest.mark.parametrize("spelling", ["Foo.Bar", "foo_bar", "FOO-bar", "foo.bar", "foo--bar", "FoO_._bAr"])
def test_every_pep503_spelling_of_a_name_is_the_same_project(allowlist, spelling):
    decision = allowlist.decide("pypi", "prod", spelling, "1.5")
    assert decision.allowed
    assert decision.reason == "allowed by allowlists/pypi.yaml:10 (foo-bar >=1.0,<2, owner team-a)"
    assert decision.rule == "allowlists/pypi.yaml:10"


@pytest.mark.parametrize(
    ("version", "allowed"),
    [
        ("1.0", True),
        ("1.0.0", True),
        ("1.99.99", True),
        ("2.0", False),
        ("2.0.0", False),
        ("0.9", False),
        ("1.0.post1", True),
        ("1!1.5", False),
    ],
)
def test_specifier_edges(allowlist, version, allowed):
    assert allowlist.decide("pypi", "prod", "foo-bar", version).allowed is allowed


@pytest.mark.parametrize(
    ("version", "allowed"), [("1.4.2", True), ("1.4.2+cpu", True), ("1.4.3", False), ("1.4.2.post1", False)]
)
def test_exact_pin_admits_local_versions_of_the_same_release(allowlist, version, allowed):
    assert allowlist.decide("pypi", "prod", "exact", version).allowed is allowed


def test_local_version_of_an_allowed_release_is_allowed(allowlist):
    assert allowlist.decide("pypi", "prod", "torch", "2.4.0+cpu").allowed
    assert allowlist.decide("pypi", "prod", "torch", "2.4.0+cu121").allowed


@pytest.mark.parametrize("version", ["2.5.0rc1", "2.5.0a1", "2.5.0b2", "2.5.0.dev3"])
def test_pre_releases_are_blocked_unless_the_entry_says_so(allowlist, version):
    decision = allowlist.decide("pypi", "prod", "torch", version)
    assert not decision.allowed
    assert f"torch {version} is a pre-release and the entry does not set 'prereleases: true'" in decision.reason
    assert decision.rule == "allowlists/pypi.yaml:15"
    assert allowlist.decide("pypi", "prod", "nightly", "1.1rc1").allowed


def test_version_outside_range_names_the_entry_and_how_to_ask(allowlist):
    decision = allowlist.decide("pypi", "prod", "torch", "2.2.0")
    assert not decision.allowed
    assert decision.reason.startswith(
        "blocked: torch 2.2.0 is outside the allowed versions >=2.3,<3 (the prod entry is allowlists/pypi.yaml:15); "
        "to ask for it, request an exception: POST /api/v1/exceptions "
    )
    assert '"package": "torch"' in decision.reason and '"versions": "==2.2.0"' in decision.reason


def test_unlisted_project_is_blocked_with_how_to_ask(allowlist):
    decision = allowlist.decide("pypi", "prod", "LightGBM", "4.3.0")
    assert not decision.allowed
    assert decision.rule is None
    assert decision.reason.startswith(
        "blocked: lightgbm is not on the prod allowlist; to ask for it, request an exception"
    )


def test_invalid_version_is_blocked_not_a_crash(allowlist):
    decision = allowlist.decide("pypi", "prod", "torch", "not-a-version")
    assert not decision.allowed
    assert "'not-a-version' is not a valid PEP 440 version" in decision.reason


def test_deny_beats_allow(allowlist):
    decision = allowlist.decide("pypi", "prod", "torch", "2.6.0")
    assert not decision.allowed
    assert decision.rule == "allowlists/pypi.yaml:8"
    assert "denied by allowlists/pypi.yaml:8 (broken kernels)" in decision.reason
    assert allowlist.decide("pypi", "prod", "torch", "2.6.1").allowed
    denied = allowlist.decide("pypi", "dev", "REQEUSTS", "2.31.0")
    assert not denied.allowed and denied.rule == "allowlists/pypi.yaml:7"


def test_extends_chain_inherits_but_not_upwards(allowlist):
    assert allowlist.decide("pypi", "preprod", "foo-bar", "1.2").allowed
    assert allowlist.decide("pypi", "dev", "foo-bar", "1.2").allowed
    assert allowlist.decide("pypi", "dev", "lightgbm", "4.3.0").allowed
    assert allowlist.decide("pypi", "dev", "scratchpad", "1.0").allowed
    assert not allowlist.decide("pypi", "prod", "lightgbm", "4.3.0").allowed
    assert not allowlist.decide("pypi", "preprod", "scratchpad", "1.0").allowed


def test_expired_entry_allows_nothing_and_says_when_it_ended(allowlist):
    decision = allowlist.decide("pypi", "prod", "retired", "1.0")
    assert not decision.allowed
    assert decision.reason.startswith(
        "blocked: allowlists/pypi.yaml:39 (retired any release, owner team-c) expired on 2026-11-27"
    )
    assert allowlist.decide("pypi", "prod", "lastday", "1.0").allowed


def test_expiry_makes_the_allowlist_stale_so_holders_rebuild(allowlist):
    assert allowlist.valid_until == NOW.replace(hour=0) + timedelta(days=1)
    assert not allowlist.is_stale(NOW)
    assert allowlist.is_stale(NOW + timedelta(days=1))
    later = allowlist_from(("allowlists/pypi.yaml", PYPI), now=NOW + timedelta(days=1))
    assert not later.decide("pypi", "prod", "lastday", "1.0").allowed


def test_expiry_is_a_warning(allowlist):
    warnings = [str(w) for w in allowlist.policy.warnings]
    assert warnings == [
        "allowlists/pypi.yaml:39: warning: entry for retired expired on 2026-11-27: it allows nothing until renewed or removed"
    ]


def test_unknown_environment_is_an_error_naming_the_known_ones(allowlist):
    with pytest.raises(
        UnknownEnvironment, match=r"unknown environment 'staging' for pypi \(known: prod, preprod, dev\)"
    ):
        allowlist.decide("pypi", "staging", "torch", "2.4.0")


def test_repeated_questions_are_memoised(allowlist):
    first = allowlist.decide("pypi", "prod", "torch", "2.4.1")
    assert allowlist.decide("pypi", "prod", "torch", "2.4.1") is first


def test_ecosystem_without_a_file_blocks_everything():
    allowlist = allowlist_from(("allowlists/pypi.yaml", PYPI))
    with pytest.raises(UnknownEnvironment, match=r"for conda \(known: none\)"):
        allowlist.decide("conda", "prod", "numpy", "1.26.0")
