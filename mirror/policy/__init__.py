"""Airlock's policy core: pure functions from allowlist files and exceptions to decisions.

    policy = load_policy_files([("allowlists/pypi.yaml", text)], now)
    allowlist = build_allowlist(policy, grants=[], now=now)
    allowlist.decide("pypi", "prod", "NumPy", "2.0.1")  # Decision(allowed=True, ...)

No network, no database, no global state: callers read files and pass the time.
"""

from mirror.policy.allowlist import Allowlist, how_to_ask
from mirror.policy.build import build_allowlist
from mirror.policy.interface import (
    Decision,
    Diagnostic,
    Ecosystem,
    ExceptionGrant,
    InvalidAllowlist,
    InvalidGrant,
    Origin,
    PolicyError,
    Rule,
    RuleKind,
    UnknownEnvironment,
)
from mirror.policy.loader import PolicyFile, PolicySet, load_policy_files

__all__ = [
    "Allowlist",
    "Decision",
    "Diagnostic",
    "Ecosystem",
    "ExceptionGrant",
    "InvalidAllowlist",
    "InvalidGrant",
    "Origin",
    "PolicyError",
    "PolicyFile",
    "PolicySet",
    "Rule",
    "RuleKind",
    "UnknownEnvironment",
    "build_allowlist",
    "how_to_ask",
    "load_policy_files",
]
