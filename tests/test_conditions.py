"""Conditions on allowlisted releases: age, advisories, malicious reports, licences — declared per
environment, inherited, overridden per entry, waived by an exception, each withholding explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mirror.policy import ExceptionGrant, InvalidAllowlist, build_allowlist, load_policy_files
from mirror.policy.advisories import index_documents
from mirror.policy.conditions import ReleaseFacts
from tests.conftest import NOW

PYPI = """\
ecosystem: pypi
environments:
  prod:
    min_age: 7d
    block_vulnerable: high
    block_malicious: true
    licenses: {deny: [AGPL-3.0-only], unknown: allow}
  preprod: {extends: prod, min_age: 2d, block_vulnerable: critical}
packages:
  - {name: numpy, environments: [prod], reason: numerics, owner: ml}
  - {name: fresh, environments: [prod], reason: r, owner: o, min_age: 1h}
"""


def osv(record_id: str, package: str, fixed: str | None, severity: str | None, aliases=()) -> tuple[str, dict]:
    events = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
    document = {
        "id": record_id,
        "aliases": list(aliases),
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": package}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
    }
    if severity:
        document["database_specific"] = {"severity": severity}
    return f"{record_id}.json", document


def allowlist(text: str = PYPI, grants=(), advisories=()):
    policy = load_policy_files([("allowlists/pypi.yaml", text)], NOW)
    return build_allowlist(policy, grants, NOW, index_documents(advisories))


def uploaded(days: float) -> ReleaseFacts:
    return ReleaseFacts(upload_time=NOW - timedelta(days=days))


def test_a_release_younger_than_min_age_is_withheld_until_it_is_old_enough():
    judged = allowlist().judge("pypi", "prod", "numpy", "2.3.5", uploaded(2), now=NOW)
    assert not judged.allowed and judged.condition == "min_age"
    assert judged.reason == (
        "withheld: numpy 2.3.5 was published 2 days ago; prod requires 7 days (min_age, allowlists/pypi.yaml:4); "
        "it becomes available on 2026-12-03 12:00 UTC"
    )
    assert judged.until == NOW + timedelta(days=5)
    assert allowlist().judge("pypi", "prod", "numpy", "2.3.4", uploaded(8), now=NOW).allowed


def test_environments_inherit_conditions_key_by_key_and_entries_override_them():
    assert allowlist().judge("pypi", "preprod", "numpy", "2.3.5", uploaded(3), now=NOW).allowed  # 2d in preprod
    assert allowlist().judge("pypi", "prod", "fresh", "1.0", uploaded(0.1), now=NOW).allowed  # the entry: 1h


def test_a_file_without_an_upload_time_counts_as_too_new():
    judged = allowlist().judge("pypi", "prod", "numpy", "2.3.5", ReleaseFacts(), now=NOW)
    assert judged.reason.startswith(
        "withheld: numpy 2.3.5 has no upload time, so its age is unknown; prod requires 7 days"
    )


def test_known_vulnerabilities_at_or_above_the_threshold_withhold_the_version():
    advisories = [
        osv("GHSA-aaaa-bbbb-cccc", "numpy", "2.3.6", "HIGH", ["CVE-2026-1"]),
        osv("PYSEC-2026-9", "numpy", "2.0", "LOW"),
    ]
    listed = allowlist(advisories=advisories)
    judged = listed.judge("pypi", "prod", "numpy", "2.3.5", uploaded(30), now=NOW)
    assert judged.reason == (
        "withheld: numpy 2.3.5 has known vulnerability CVE-2026-1 (HIGH, fixed in 2.3.6); prod withholds high and "
        "above (block_vulnerable, allowlists/pypi.yaml:5)"
    )
    assert listed.judge("pypi", "preprod", "numpy", "2.3.5", uploaded(30), now=NOW).allowed  # critical only
    assert listed.judge("pypi", "prod", "numpy", "2.3.6", uploaded(30), now=NOW).allowed


def test_a_malicious_report_withholds_every_version_it_names():
    judged = allowlist(advisories=[osv("MAL-2026-77", "numpy", None, None)]).judge(
        "pypi", "preprod", "numpy", "2.3.5", uploaded(30), now=NOW
    )
    assert judged.condition == "block_malicious"
    assert "numpy 2.3.5 is reported malicious (MAL-2026-77)" in judged.reason


def test_denied_and_unknown_licences():
    listed = allowlist()
    denied = listed.judge(
        "pypi", "prod", "numpy", "1.0", ReleaseFacts(NOW - timedelta(days=9), "AGPL-3.0-only OR MIT"), now=NOW
    )
    assert denied.reason == (
        "withheld: numpy 1.0 is licensed AGPL-3.0-only OR MIT, and prod denies agpl-3.0-only (licenses, allowlists/pypi.yaml:7)"
    )
    assert listed.judge("pypi", "prod", "numpy", "1.0", uploaded(9), now=NOW).allowed  # unknown: allow
    strict = allowlist(PYPI.replace("unknown: allow", "unknown: deny"))
    assert strict.judge("pypi", "prod", "numpy", "1.0", uploaded(9), now=NOW).condition == "licenses"


def test_an_exception_may_waive_a_named_condition_for_its_versions_only():
    grant = ExceptionGrant(
        "7",
        "pypi",
        "numpy",
        "==2.3.5",
        frozenset({"prod"}),
        NOW + timedelta(days=30),
        "gina",
        "churn",
        frozenset({"min_age"}),
    )
    text = PYPI.replace("  - {name: numpy, environments: [prod], reason: numerics, owner: ml}\n", "")
    listed = allowlist(text, [grant])
    assert listed.judge("pypi", "prod", "numpy", "2.3.5", uploaded(1), now=NOW).allowed
    assert not listed.judge("pypi", "prod", "numpy", "2.3.4", uploaded(1), now=NOW).allowed  # not its version


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ("min_age: soon", "allowlists/pypi.yaml:4: min_age must be a duration like 7d or 12h, got 'soon'"),
        (
            "block_vulnerable: severe",
            "allowlists/pypi.yaml:4: block_vulnerable must be one of low, medium, high, critical or none, got 'severe'",
        ),
        (
            "licenses: {deny: AGPL}",
            "allowlists/pypi.yaml:4: licenses.deny must be a list of SPDX identifiers, e.g. [AGPL-3.0-only, SSPL-1.0]",
        ),
    ],
)
def test_bad_conditions_are_reported_at_their_line(environment, message):
    text = f"ecosystem: pypi\nenvironments:\n  prod:\n    {environment}\npackages: []\n"
    with pytest.raises(InvalidAllowlist) as caught:
        load_policy_files([("allowlists/pypi.yaml", text)], NOW)
    assert [str(d) for d in caught.value.diagnostics] == [message]


def test_images_take_no_conditions():
    text = "ecosystem: containers\nenvironments:\n  prod: {min_age: 7d}\nupstreams:\n  mar: {url: https://mcr.microsoft.com}\nimages: []\n"
    with pytest.raises(InvalidAllowlist, match="apply to PyPI and conda files; images are judged by the gate"):
        load_policy_files([("allowlists/containers.yaml", text)], NOW)


def test_advisory_conditions_without_advisories_fail_closed():
    policy = load_policy_files([("allowlists/pypi.yaml", PYPI)], NOW)
    judged = build_allowlist(policy, (), NOW).judge("pypi", "prod", "numpy", "1.0", uploaded(30), now=NOW)
    assert judged.reason == (
        "withheld: prod sets block_vulnerable (allowlists/pypi.yaml:5), but Airlock has no advisories to check it "
        "against: set AIRLOCK_ADVISORIES to an OSV folder (or --advisories)"
    )


def test_now_defaults_to_the_clock():
    judged = allowlist().judge("pypi", "prod", "numpy", "1.0", ReleaseFacts(datetime.now(UTC) - timedelta(days=1)))
    assert judged.condition == "min_age"


@pytest.mark.parametrize(
    ("metadata", "licence"),
    [
        (b"Metadata-Version: 2.4\nName: x\nLicense-Expression: MIT OR Apache-2.0\n", "MIT OR Apache-2.0"),
        (b"Metadata-Version: 2.1\nName: x\nLicense: BSD 3-Clause\n", "BSD 3-Clause"),
        # pandas 2.3.3's METADATA: the licence's whole text, with bytes that are not ASCII
        (
            "Metadata-Version: 2.1\nName: pandas\nLicense: Copyright (c) 2008-2011, AQR Capital — “all rights” ".encode()
            + b"x" * 200
            + b"\nClassifier: License :: OSI Approved :: BSD License\n",
            "BSD License",
        ),
        (b"Metadata-Version: 2.1\nName: x\nLicense: UNKNOWN\n", None),
        (b"\xff\xfe not metadata at all", None),
    ],
    ids=["expression", "short-field", "non-ascii-text", "unknown", "garbage"],
)
def test_licences_are_read_from_any_metadata_without_error(metadata, licence):
    from mirror.pypi.licences import licence_from_metadata

    assert licence_from_metadata(metadata) == licence
