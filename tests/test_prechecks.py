"""Pre-checks on their own (the API tests run them end to end through devpi)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from mirror.exception_requests.prechecks import PrecheckContext, run_prechecks


def typosquat(package: str, known: set[str]) -> dict[str, str]:
    checks = run_prechecks("pypi", package, None, PrecheckContext(None, None, known))
    return {check.name: check.as_dict() for check in checks}["typosquat"]


def test_names_one_typo_or_one_swap_from_a_known_name_are_flagged():
    known = {"alpha", "scikit-learn-intelex"}
    assert "'alpha'" in typosquat("alpah", known)["detail"]
    assert "'numpy'" in typosquat("numpyy", known)["detail"]  # a popular name, not in the allowlist
    assert "'scikit-learn-intelex'" in typosquat("scikit-learn-intelx", known)["detail"]
    assert typosquat("alpha", known)["status"] == "pass"  # a name is not its own typosquat
    assert typosquat("zebra-tools", known)["status"] == "pass"


def test_a_large_allowlist_is_searched_and_verdicts_are_kept():
    known = {f"project-{i}" for i in range(5_000)} | {"requests-toolbelt"}
    context = PrecheckContext(None, None, known)
    first = run_prechecks("pypi", "reqeusts-toolbelt", None, context)[0]
    assert first.status == "warn" and "'requests-toolbelt'" in first.detail
    again = run_prechecks("pypi", "reqeusts-toolbelt", None, context)[0]
    assert again == first
    with pytest.raises(FrozenInstanceError):  # shared between answers, so nobody may change it
        first.status = "pass"
    assert run_prechecks("pypi", "unrelated-name", None, context)[0].status == "pass"
