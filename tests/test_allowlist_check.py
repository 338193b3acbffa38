"""`airlock allowlist check`: every problem at once, as FILE:LINE: message, and nothing applied."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mirror.cli import main
from mirror.policy import Ecosystem, InvalidAllowlist, load_policy_files, yamlsource
from tests.conftest import NOW, REPO_ROOT

HEADER = "ecosystem: pypi\nenvironments:\n  prod: {}\n  preprod: {extends: prod}\npackages:\n"
ENTRY = "  - name: numpy\n    environments: [prod]\n    reason: numerics\n    owner: ml\n"


def problems(text: str, name: str = "allowlists/pypi.yaml") -> list[str]:
    with pytest.raises(InvalidAllowlist) as caught:
        load_policy_files([(name, textwrap.dedent(text))], NOW)
    return [str(d) for d in caught.value.diagnostics]


# Each case: the file's text, and exactly the diagnostics `check` must print.
BAD_PYPI = {
    "typo in a key": (
        HEADER + "  - name: numpy\n    verisons: '>=1.26'\n    environments: [prod]\n    reason: r\n    owner: o\n",
        ["allowlists/pypi.yaml:7: unknown key 'verisons' (did you mean 'versions'?)"],
    ),
    "invalid specifier": (
        HEADER + "  - name: pandas\n    versions: '>=2.1,<<3'\n    environments: [prod]\n    reason: r\n    owner: o\n",
        ['allowlists/pypi.yaml:7: invalid PEP 440 specifier \'>=2.1,<<3\' (e.g. ">=1.26,<3" or "==2.1.*")'],
    ),
    "invalid name": (
        HEADER + "  - name: 'not a name!'\n    environments: [prod]\n    reason: r\n    owner: o\n",
        ["allowlists/pypi.yaml:6: invalid project name 'not a name!': use letters, digits, '.', '_' and '-' (PEP 508)"],
    ),
    "unknown environment": (
        HEADER + "  - name: scipy\n    environments: [staging]\n    reason: r\n    owner: o\n",
        ["allowlists/pypi.yaml:7: unknown environment 'staging' (declared: prod, preprod)"],
    ),
    "duplicate after normalisation": (
        HEADER + ENTRY + "  - name: NumPy\n    environments: [preprod, prod]\n    reason: again\n    owner: o\n",
        ["allowlists/pypi.yaml:10: duplicate entry for numpy in prod (first at line 6): merge them into one entry"],
    ),
    "empty reason": (
        HEADER + "  - name: torch\n    environments: [prod]\n    reason: ''\n    owner: o\n",
        ["allowlists/pypi.yaml:8: empty 'reason': say why the entry exists"],
    ),
    "missing reason and owner": (
        HEADER + "  - name: torch\n    environments: [prod]\n",
        [
            "allowlists/pypi.yaml:6: missing 'owner': name the team that answers for it",
            "allowlists/pypi.yaml:6: missing 'reason': say why the entry exists",
        ],
    ),
    "malformed expiry": (
        HEADER + "  - name: mlflow\n    environments: [prod]\n    reason: r\n    owner: o\n    expires: 2026-02-30\n",
        ["allowlists/pypi.yaml:10: 'expires' must be a date written YYYY-MM-DD, got a string ('2026-02-30')"],
    ),
    "wrong types": (
        HEADER
        + "  - name: xgboost\n    versions: 2.0\n    prereleases: 'yes'\n    environments: prod\n    reason: r\n    owner: o\n",
        [
            "allowlists/pypi.yaml:7: 'versions' must be a string, got a number (2.0); quote it",
            "allowlists/pypi.yaml:8: 'prereleases' must be true or false, got a string ('yes')",
            "allowlists/pypi.yaml:9: 'environments' must be a list, got a string ('prod'); write [prod]",
        ],
    ),
    "entry that is not a mapping": (
        HEADER + ENTRY + "  - just-a-string\n",
        [
            "allowlists/pypi.yaml:10: packages entry must be a mapping (name: ..., reason: ...), got a string ('just-a-string')"
        ],
    ),
    "extends cycle": (
        "ecosystem: pypi\nenvironments:\n  prod: {extends: preprod}\n  preprod: {extends: prod}\npackages: []\n",
        ["allowlists/pypi.yaml:3: 'extends' cycle: prod -> preprod -> prod"],
    ),
    "extends unknown environment": (
        "ecosystem: pypi\nenvironments:\n  prod: {}\n  preprod: {extends: prd}\npackages: []\n",
        ["allowlists/pypi.yaml:4: environment 'preprod' extends unknown environment 'prd' (declared: prod, preprod)"],
    ),
    "yaml syntax": (
        HEADER + "  - name: x\n    versions: >=1.0\n",
        [
            "allowlists/pypi.yaml:7: YAML syntax error: while scanning a block scalar, did not find expected comment or line break"
            ' (quote values that start with >, *, &, !, |, % or @, e.g. versions: ">=1.0")'
        ],
    ),
    "duplicate key": (
        HEADER + "  - name: x\n    reason: a\n    reason: b\n",
        ["allowlists/pypi.yaml:8: YAML error: duplicate mapping key: 'reason'"],
    ),
    "unknown top-level key": (
        HEADER.replace("packages:\n", "pakages:\n") + ENTRY,
        ["allowlists/pypi.yaml:5: unknown key 'pakages' (did you mean 'packages'?)"],
    ),
    "unknown ecosystem": (
        "ecosystem: npm\nenvironments: {prod: {}}\n",
        ["allowlists/pypi.yaml:1: 'ecosystem' must be one of pypi, conda, containers, got a string ('npm')"],
    ),
    "no environments": (
        "ecosystem: pypi\npackages: []\n",
        ["allowlists/pypi.yaml:1: missing 'environments': declare them, e.g. {prod: {}, preprod: {extends: prod}}"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_PYPI), ids=list(BAD_PYPI))
def test_each_bad_input_has_its_exact_message_and_line(case):
    text, expected = BAD_PYPI[case]
    assert problems(text) == expected


def test_conda_and_container_mistakes_are_reported_with_lines():
    conda = problems(
        """\
        ecosystem: conda
        environments: {prod: {}}
        channels:
          conda-forge: {url: https://conda.anaconda.org/conda-forge}
          bioconda: {url: https://conda.anaconda.org/bioconda}
        packages:
          - spec: "pytorch >=>2.3"
            channel: conda-forge
            environments: [prod]
            reason: x
            owner: y
          - spec: "conda-forge::numpy"
            channel: conda-forge
            environments: [prod]
            reason: x
            owner: y
          - spec: "scipy"
            environments: [prod]
            reason: x
            owner: y
          - spec: "pandas"
            channel: defaults
            environments: [prod]
            reason: x
            owner: y
        """,
        "allowlists/conda.yaml",
    )
    assert conda == [
        "allowlists/conda.yaml:7: invalid MatchSpec 'pytorch >=>2.3': unable to parse version spec: >=>2.3",
        "allowlists/conda.yaml:12: MatchSpec 'conda-forge::numpy' names a channel: write it as 'channel: NAME' beside the spec",
        "allowlists/conda.yaml:17: missing 'channel': this file declares several (bioconda, conda-forge)",
        "allowlists/conda.yaml:22: unknown channel 'defaults' (declared: bioconda, conda-forge)",
    ]
    containers = problems(
        """\
        ecosystem: containers
        environments: {prod: {}}
        upstreams: {mar: {url: https://mcr.microsoft.com}}
        images:
          - image: mar/azureml/openmpi4.1.0-ubuntu22.04
            tags: ["bad tag"]
            digests: ["sha256:abc"]
            environments: [prod]
            reason: base
            owner: ml
          - image: dockerhub/library/python
            tags: ["3.11"]
            environments: [prod]
            reason: base
            owner: ml
          - image: mar/azureml/python
            environments: [prod]
            reason: base
            owner: ml
        """,
        "allowlists/containers.yaml",
    )
    assert containers == [
        "allowlists/containers.yaml:6: invalid tag glob 'bad tag': tags use letters, digits, '_', '.', '-' (globs add * ? [])",
        "allowlists/containers.yaml:7: invalid digest 'sha256:abc': write sha256: followed by 64 lowercase hex digits",
        "allowlists/containers.yaml:11: image 'dockerhub/library/python' names unknown upstream 'dockerhub' (declared: mar)",
        "allowlists/containers.yaml:16: image entry lists neither 'tags' nor 'digests': name what it allows",
    ]


def test_every_problem_of_every_file_is_reported_at_once(write_allowlists, capsys):
    folder = write_allowlists(
        {
            "pypi.yaml": BAD_PYPI["typo in a key"][0]
            + "  - name: scipy\n    environments: [staging]\n    reason: r\n    owner: o\n",
            "gate.yaml": "environments:\n  prod: {fail_on: [SEVERE]}\n",
            "waivers.yaml": "waivers:\n  - id: CVE-2026-1\n    reason: r\n    approved_by: jane\n",
        }
    )
    assert main(["allowlist", "check", str(folder)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert any(line.endswith("pypi.yaml:7: unknown key 'verisons' (did you mean 'versions'?)") for line in lines)
    assert any(line.endswith("pypi.yaml:12: unknown environment 'staging' (declared: prod, preprod)") for line in lines)
    assert any(
        line.endswith("gate.yaml:2: 'fail_on' must be a list of severities from UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL")
        for line in lines
    )
    assert any(
        line.endswith("waivers.yaml:2: missing 'expires': every waiver needs an end date (YYYY-MM-DD)")
        for line in lines
    )
    assert len(lines) == 4
    assert "4 errors: the allowlists were not applied" in err


def test_expired_entry_is_a_warning_and_check_passes(write_allowlists, capsys):
    folder = write_allowlists({"pypi.yaml": HEADER + ENTRY + "    expires: 2020-01-31\n"})
    assert main(["allowlist", "check", str(folder)]) == 0
    out, _ = capsys.readouterr()
    assert (
        "pypi.yaml:6: warning: entry for numpy expired on 2020-01-31: it allows nothing until renewed or removed" in out
    )
    assert "ok: 1 file valid, 1 warning(s)" in out


def test_check_json_lists_diagnostics_for_machines(write_allowlists, capsys):
    folder = write_allowlists({"pypi.yaml": BAD_PYPI["empty reason"][0]})
    assert main(["allowlist", "check", "--json", str(folder)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["diagnostics"] == [
        {
            "file": report["diagnostics"][0]["file"],
            "line": 8,
            "severity": "error",
            "message": "empty 'reason': say why the entry exists",
        }
    ]


def test_missing_path_and_empty_folder_fail_clearly(tmp_path, capsys):
    assert main(["allowlist", "check", str(tmp_path / "nope")]) == 1
    assert "nope:0: no such file or folder" in capsys.readouterr().out
    assert main(["allowlist", "check", str(tmp_path)]) == 1
    assert "no allowlist files (*.yaml) found" in capsys.readouterr().err


def test_installed_command_prints_no_stack_trace_on_garbage(tmp_path):
    bad = tmp_path / "pypi.yaml"
    bad.write_bytes(b"\xff\xfe not yaml at all: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "allowlist", "check", str(bad)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "pypi.yaml:0: cannot read the file" in result.stdout


def test_shipped_example_allowlists_are_valid(capsys):
    assert main(["allowlist", "check", str(REPO_ROOT / "allowlists")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 5 files valid")


def long_pypi_file(
    entries: int, entry=lambda i: f"  - name: pkg-{i}\n    environments: [prod]\n    reason: rule {i}\n    owner: ml\n"
) -> str:
    """Over a megabyte: the loader parses its package list in parts on parallel threads."""
    return HEADER + "".join(entry(i) for i in range(entries)) + "deny:\n  - name: evil\n    reason: malware\n"


def rules_of(text: str) -> list[tuple[str, int, str]]:
    policy = load_policy_files([("allowlists/pypi.yaml", text)], NOW).files[Ecosystem.PYPI]
    return [(rule.name, rule.origin.line, rule.owner) for rule in policy.rules]


def test_a_long_file_parsed_in_parts_gives_the_rules_and_lines_of_a_whole_parse(monkeypatch):
    text = long_pypi_file(15_000)
    assert yamlsource._parse_in_parts(text) is not None  # the parts path is the one taken
    in_parts = rules_of(text)
    monkeypatch.setattr(yamlsource, "_PARTS_MIN_CHARS", len(text) + 1)
    assert rules_of(text) == in_parts
    assert len(in_parts) == 15_001
    assert in_parts[12_345] == ("pkg-12345", 6 + 4 * 12_345, "ml")
    assert in_parts[-1][:2] == ("evil", 6 + 4 * 15_000 + 1)


def test_a_long_file_reports_a_mistake_deep_inside_at_its_line():
    bad = long_pypi_file(
        15_000,
        lambda i: (
            f"  - name: pkg-{i}\n    {'verisons' if i == 11_111 else 'versions'}: '>=1'\n"
            f"    environments: [prod]\n    reason: r\n    owner: ml\n"
        ),
    )
    assert problems(bad) == [
        f"allowlists/pypi.yaml:{6 + 5 * 11_111 + 1}: unknown key 'verisons' (did you mean 'versions'?)"
    ]


def test_a_long_file_with_yaml_spanning_entries_is_parsed_whole():
    # An anchor in the first entry used by the last, and an unterminated quote in the middle:
    # a part alone cannot parse either, so the whole text decides (the alias works, the quote fails).
    def entry(i: int) -> str:
        owner = "&team ml-platform" if i == 0 else "*team" if i == 14_999 else "ml"
        return f"  - name: pkg-{i}\n    environments: [prod]\n    reason: rule {i}\n    owner: {owner}\n"

    assert rules_of(long_pypi_file(15_000, entry))[14_999] == ("pkg-14999", 6 + 4 * 14_999, "ml-platform")

    def broken(i: int) -> str:
        reason = '"begins\n  - name: looks-like-an-entry\n    ends"' if i == 7_500 else f"rule {i}"
        return f"  - name: pkg-{i}\n    environments: [prod]\n    reason: {reason}\n    owner: ml\n"

    [message] = problems(long_pypi_file(15_000, broken))
    assert message.startswith(f"allowlists/pypi.yaml:{6 + 4 * 7_500 + 3}: YAML syntax error: invalid indentation")
