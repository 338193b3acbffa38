"""Advisory records as the databases publish them, merged into one vulnerability per alias set.

The fixtures are real GHSA and PYSEC records (tests/fixtures/advisories/SOURCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror.policy.advisories import UnreadableRecord, index_documents, intervals_of, read_advisory_folder

FIXTURES = Path(__file__).parent / "fixtures" / "advisories"


@pytest.fixture(scope="module")
def real():
    return read_advisory_folder(FIXTURES / "real")


def record(name: str) -> dict:
    return json.loads((FIXTURES / "real" / f"{name}.json").read_text())


def test_every_affected_entry_of_a_ghsa_record_counts():
    index = index_documents([("ghsa", record("GHSA-2gwj-7jmv-h26r"))])
    for version in ("2.2", "2.2.27", "3.2.12", "4.0.3"):
        assert index.affecting("Django", version), version
    for version in ("2.1.15", "2.2.28", "3.0", "3.2.13", "4.0.4", "4.1"):
        assert not index.affecting("django", version), version


def test_a_ghsa_record_and_its_pysec_twin_are_one_vulnerability(real):
    [vulnerability] = real.affecting("django", "2.2.27")
    assert vulnerability.id == "CVE-2022-28346"
    assert set(vulnerability.ids) == {"CVE-2022-28346", "GHSA-2gwj-7jmv-h26r", "PYSEC-2022-190"}
    assert vulnerability.severity == "CRITICAL"  # GitHub's rating survives the unrated PYSEC record
    assert vulnerability.title == "SQL Injection in Django"
    assert sorted(vulnerability.records) == ["GHSA-2gwj-7jmv-h26r", "PYSEC-2022-190"]
    assert vulnerability.affected["django"].fixed_versions == ["2.2.28", "3.2.13", "4.0.4"]


def test_the_merge_does_not_depend_on_the_order_records_are_read():
    ghsa, pysec = record("GHSA-2gwj-7jmv-h26r"), record("PYSEC-2022-190")
    forwards = index_documents([("a", ghsa), ("b", pysec)])
    backwards = index_documents([("a", pysec), ("b", ghsa)])
    for index in (forwards, backwards):
        [vulnerability] = index.vulnerabilities
        assert (vulnerability.id, vulnerability.severity, vulnerability.title) == (
            "CVE-2022-28346",
            "CRITICAL",
            "SQL Injection in Django",
        )
        assert index.merged == 1


def test_range_events_in_any_order():
    pysec = index_documents([("pysec", record("PYSEC-2022-190"))])
    assert pysec.affecting("django", "3.2.5") and pysec.affecting("django", "2.2.1")
    assert not pysec.affecting("django", "3.1.14") and not pysec.affecting("django", "4.0.4")
    assert intervals_of([{"fixed": "2"}, {"introduced": "1"}]) == intervals_of([{"introduced": "1"}, {"fixed": "2"}])


def test_last_affected_includes_that_version_only(real):
    [vulnerability] = real.affecting("py", "1.11.0")
    assert vulnerability.id == "CVE-2022-42969" and "GHSA-w596-4wvx-j9j6" in vulnerability.ids
    assert not real.affecting("py", "1.11.1")
    assert vulnerability.affected["py"].fixed_versions == []


def test_a_record_without_summary_is_titled_by_the_first_sentence_of_its_details(real):
    [vulnerability] = real.affecting("py", "1.4.0")
    assert vulnerability.title == (
        "The py library through 1.11.0 for Python allows remote attackers to conduct a ReDoS "
        "(Regular expression Denial of Service) attack via a Subversion repository with crafted "
        "info data, because the InfoSvnCommand argument is mishandled."
    )
    assert vulnerability.severity == "UNKNOWN"


def test_a_withdrawn_record_is_skipped_and_says_why(real):
    assert not [v for v in real.for_package("aiohttp") if "CVE-2022-33124" in v.ids]
    [skipped] = [s for s in real.skipped if "PYSEC-2022-43059" in s.source]
    assert skipped.reason == "withdrawn on 2023-11-08T00:54:24Z"
    assert real.records == 6 and real.merged == 1 and len(real.skipped) == 1


def test_a_cvss_v3_vector_rates_a_record_github_did_not(real):
    [vulnerability] = real.affecting("aiohttp", "3.8.5")
    assert vulnerability.id == "CVE-2023-47627" and vulnerability.severity == "HIGH"
    assert not real.affecting("aiohttp", "3.8.6")


def test_a_cvss_v4_vector_is_scored():
    index = read_advisory_folder(FIXTURES / "derived")
    [vulnerability] = index.affecting("setuptools", "69.1.1")
    assert vulnerability.severity == "HIGH"  # CVSS:4.0/…/UI:P/VC:H/VI:H/VA:H scores 8.7


def test_two_branches_of_urllib3(real):
    for version in ("1.26.18", "2.2.1"):
        [vulnerability] = real.affecting("urllib3", version)
        assert vulnerability.id == "CVE-2024-37891" and vulnerability.severity == "MEDIUM"
    assert not real.affecting("urllib3", "1.26.19") and not real.affecting("urllib3", "2.2.2")


def test_records_that_disagree_at_the_edges_merge_by_union():
    def shaped(record_id: str, aliases: list[str], fixed: str, severity: dict) -> dict:
        return {
            "id": record_id,
            "aliases": aliases,
            "details": "RSA decryption was vulnerable to Bleichenbacher timing.",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "cryptography"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                }
            ],
            **severity,
        }

    github = shaped("GHSA-hggm-jpg3-v476", ["CVE-2020-25659"], "3.2", {"database_specific": {"severity": "MODERATE"}})
    pypa = shaped("PYSEC-2021-62", ["CVE-2020-25659", "GHSA-hggm-jpg3-v476"], "3.2.1", {})
    index = index_documents([("github", github), ("pypa", pypa)])
    [vulnerability] = index.affecting("cryptography", "3.2")  # PyPA says 3.2 is affected: it is
    assert vulnerability.severity == "MEDIUM"
    assert vulnerability.affected["cryptography"].fixed_versions == [
        "3.2.1"
    ]  # 3.2 is no fix while PyPA calls it affected
    assert not index.affecting("cryptography", "3.2.1")


def test_records_join_through_a_shared_alias_only_once():
    first = {
        "id": "GHSA-aaaa",
        "aliases": ["CVE-1"],
        "summary": "one",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1.0"]}],
    }
    second = {
        "id": "PYSEC-1",
        "aliases": ["CVE-1"],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "b"}, "versions": ["2.0"]}],
    }
    third = {
        "id": "GHSA-bbbb",
        "aliases": ["CVE-2"],
        "summary": "two",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1.0"]}],
    }
    index = index_documents([("1", first), ("2", second), ("3", third)])
    assert sorted(v.id for v in index.vulnerabilities) == ["CVE-1", "CVE-2"]
    [one] = [v for v in index.vulnerabilities if v.id == "CVE-1"]
    assert set(one.affected) == {"a", "b"}


def test_unusable_records_are_skipped_with_their_reason():
    index = index_documents(
        [
            (
                "go.json",
                {"id": "GO-2024-1", "affected": [{"package": {"ecosystem": "Go", "name": "x"}, "versions": ["1"]}]},
            ),
            (
                "bad.json",
                {
                    "id": "PYSEC-X",
                    "affected": [
                        {
                            "package": {"ecosystem": "PyPI", "name": "x"},
                            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "one"}]}],
                        }
                    ],
                },
            ),
            ("list.json", [{"summary": "no id"}]),
        ]
    )
    assert [str(s) for s in index.skipped] == [
        "go.json (GO-2024-1): affects no PyPI package",
        "bad.json (PYSEC-X): introduced version 'one' is not a PEP 440 version",
        "list.json: no 'id': not an OSV record",
    ]
    with pytest.raises(UnreadableRecord):
        intervals_of([{"fixed": "not a version"}])


def test_gate_yaml_says_what_unrated_vulnerabilities_do(write_allowlists, capsys):
    from mirror.cli import main

    folder = write_allowlists(
        {
            "gate.yaml": "environments:\n  prod: {fail_on: [HIGH], unknown: maybe}\n"
            "  preprod: {fail_on: [UNKNOWN, CRITICAL], unknown: warn}\n"
        }
    )
    assert main(["allowlist", "check", str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "gate.yaml:2: 'unknown' must be fail or warn (what a vulnerability no source rated does), got a string ('maybe')"
    )
    assert lines[1].endswith(
        "gate.yaml:3: 'fail_on' lists UNKNOWN but 'unknown' is warn: say it once, with 'unknown: fail' or 'unknown: warn'"
    )


def test_explain_lists_the_merged_vulnerabilities_of_a_version(write_allowlists, capsys):
    from mirror.cli import main

    folder = write_allowlists(
        {
            "pypi.yaml": """\
        ecosystem: pypi
        environments: {prod: {}}
        packages:
          - {name: django, environments: [prod], reason: web, owner: ml}
        """
        }
    )
    code = main(
        [
            "allowlist",
            "explain",
            "pypi",
            "Django==3.2.12",
            "--env",
            "prod",
            "--allowlists",
            str(folder),
            "--advisories",
            str(FIXTURES / "real"),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[1:] == [
        f"known vulnerabilities of Django 3.2.12 ({FIXTURES / 'real'}):",
        "  CVE-2022-28346 (also GHSA-2gwj-7jmv-h26r, PYSEC-2022-190) CRITICAL: SQL Injection in Django; fixed in 2.2.28, 3.2.13, 4.0.4",
    ]
    assert (
        main(
            [
                "allowlist",
                "explain",
                "pypi",
                "django==3.2.13",
                "--env",
                "prod",
                "--allowlists",
                str(folder),
                "--advisories",
                str(FIXTURES / "real"),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["advisories"] == []
