"""The gate's policy files, validated with the allowlists: `gate.yaml` and `waivers.yaml`.

They live in `allowlists/` and are reviewed the same way, so `airlock allowlist check` reads
them too; the gate (`gate/`) only consumes the validated values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from mirror.policy.schema import Diagnostics, EntryReader, describe_type, unknown_key_message
from mirror.policy.yamlsource import SourceDocument

GATE_FILE = "gate.yaml"
WAIVERS_FILE = "waivers.yaml"
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
_DURATION = re.compile(r"^(\d+)([mhd])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_GATE_ENV_KEYS = frozenset({"fail_on", "unknown", "secrets", "max_db_age"})
_WAIVER_KEYS = frozenset({"id", "package", "versions", "environments", "reason", "approved_by", "expires"})


@dataclass(frozen=True, slots=True)
class GateThresholds:
    fail_on: frozenset[str]
    secrets: str
    """`fail` or `warn`."""
    max_db_age: timedelta
    unknown: str = "fail"
    """What a vulnerability no source rated does: `fail` (fail closed; a waiver accepts it) or `warn`."""

    def blocks(self, severity: str) -> bool:
        if severity == "UNKNOWN":
            return self.unknown == "fail"
        return severity in self.fail_on


DEFAULT_GATE = {
    "prod": GateThresholds(frozenset({"HIGH", "CRITICAL"}), "fail", timedelta(hours=24), unknown="fail"),
    "preprod": GateThresholds(frozenset({"CRITICAL"}), "fail", timedelta(hours=72), unknown="warn"),
}
"""Without gate.yaml. In a gate.yaml environment that omits `unknown`, it is `fail`."""


@dataclass(frozen=True)
class GatePolicy:
    environments: dict[str, GateThresholds]
    file: str


@dataclass(frozen=True, slots=True)
class Waiver:
    id: str
    reason: str
    approved_by: str
    expires_at: datetime
    file: str
    line: int
    package: str | None = None
    versions: SpecifierSet | None = None
    environments: frozenset[str] | None = None
    """None: every environment."""


def parse_duration(text: str) -> timedelta | None:
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def read_gate_policy(document: SourceDocument, diagnostics: Diagnostics) -> GatePolicy | None:
    value = document.value
    if not isinstance(value, dict) or not isinstance(value.get("environments"), dict):
        diagnostics.error_at(
            1,
            "gate.yaml must hold 'environments:' mapping each environment to {fail_on: [...], secrets: fail, max_db_age: 24h}",
        )
        return None
    for key in value.keys() - {"environments"}:
        diagnostics.error((key,), unknown_key_message(key, frozenset({"environments"})))
    thresholds: dict[str, GateThresholds] = {}
    for env, body in value["environments"].items():
        path = ("environments", env)
        default = DEFAULT_GATE.get(env, DEFAULT_GATE["prod"])
        if not isinstance(body, dict):
            diagnostics.error(path, f"environment {env!r} must be a mapping, got {describe_type(body)}")
            continue
        for key in body.keys() - _GATE_ENV_KEYS:
            diagnostics.error(path + (key,), unknown_key_message(key, _GATE_ENV_KEYS))
        fail_on = body.get("fail_on", sorted(default.fail_on))
        if not isinstance(fail_on, list) or not all(isinstance(s, str) and s.upper() in SEVERITIES for s in fail_on):
            diagnostics.error(
                path + ("fail_on",), f"'fail_on' must be a list of severities from {', '.join(SEVERITIES)}"
            )
            continue
        upper = {s.upper() for s in fail_on}
        unknown = body.get("unknown", "fail")
        if unknown not in ("fail", "warn"):
            diagnostics.error(
                path + ("unknown",),
                f"'unknown' must be fail or warn (what a vulnerability no source rated does), got {describe_type(unknown)}",
            )
            continue
        if "UNKNOWN" in upper and unknown == "warn":
            diagnostics.error(
                path + ("fail_on",),
                "'fail_on' lists UNKNOWN but 'unknown' is warn: say it once, with 'unknown: fail' or 'unknown: warn'",
            )
            continue
        secrets = body.get("secrets", default.secrets)
        if secrets not in ("fail", "warn"):
            diagnostics.error(path + ("secrets",), f"'secrets' must be fail or warn, got {describe_type(secrets)}")
            continue
        raw_age = body.get("max_db_age")
        max_age = default.max_db_age if raw_age is None else parse_duration(str(raw_age))
        if max_age is None:
            diagnostics.error(
                path + ("max_db_age",),
                f"'max_db_age' must be a duration like 24h, 3d or 90m, got {describe_type(raw_age)}",
            )
            continue
        thresholds[str(env)] = GateThresholds(frozenset(upper - {"UNKNOWN"}), secrets, max_age, unknown)
    return GatePolicy(thresholds, document.file)


def read_waivers(document: SourceDocument, diagnostics: Diagnostics, now: datetime) -> tuple[Waiver, ...]:
    value = document.value
    items = value.get("waivers") if isinstance(value, dict) else None
    if not isinstance(items, list):
        diagnostics.error_at(1, "waivers.yaml must hold a 'waivers:' list (it may be empty: waivers: [])")
        return ()
    waivers: list[Waiver] = []
    for index, raw in enumerate(items):
        line = document.item_line("waivers", index)
        if not isinstance(raw, dict):
            diagnostics.error_at(line, f"waiver must be a mapping (id: ..., reason: ...), got {describe_type(raw)}")
            continue
        entry = EntryReader(raw, ("waivers", index), line, diagnostics)
        entry.check_keys(_WAIVER_KEYS)
        waiver_id = entry.text("id", required=True, what=": the CVE, GHSA or OSV id it waives")
        reason = entry.text("reason", required=True, what=": say why the finding is acceptable")
        approved_by = entry.text("approved_by", required=True, what=": who accepted the risk")
        package = entry.text("package", required=False)
        versions_text = entry.text("versions", required=False)
        environments = entry.strings("environments", required=False)
        expires_at = entry.expiry()
        if "expires" not in raw:
            entry.error(None, "missing 'expires': every waiver needs an end date (YYYY-MM-DD)")
        versions = None
        if versions_text is not None:
            try:
                versions = SpecifierSet(versions_text)
            except InvalidSpecifier:
                entry.error("versions", f"invalid PEP 440 specifier {versions_text!r}")
                continue
        if waiver_id is None or reason is None or approved_by is None or expires_at is None:
            continue
        if expires_at <= now:
            diagnostics.warning_at(line, f"waiver {waiver_id} has expired: it waives nothing")
        waivers.append(
            Waiver(
                waiver_id,
                reason,
                approved_by,
                expires_at,
                document.file,
                line,
                package,
                versions,
                frozenset(environments) if environments else None,
            )
        )
    return tuple(waivers)
