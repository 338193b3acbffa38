"""Building an `Allowlist`: the validated files' rules and the approved exceptions' rules, filed
under each name in every environment they reach through `extends`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from mirror.policy.advisories import AdvisoryIndex
from mirror.policy.allowlist import Allowlist, NameRules
from mirror.policy.interface import Ecosystem, ExceptionGrant, Origin, Rule, RuleKind
from mirror.policy.loader import SCHEMAS, PolicyFile, PolicySet


def build_allowlist(
    policy: PolicySet, grants: Iterable[ExceptionGrant], now: datetime, advisories: AdvisoryIndex | None = None
) -> Allowlist:
    """Index the validated files plus the approved exceptions still in force at `now`."""
    grants = tuple(grants)
    grant_rules = _grant_rules(policy, grants, now)
    index: dict[tuple[str, str], dict[str, NameRules]] = {}
    valid_until: datetime | None = None
    for ecosystem, policy_file in policy.files.items():
        rules = list(policy_file.rules) + grant_rules.get(ecosystem, [])
        future = [r.expires_at for r in rules if r.expires_at is not None and r.expires_at > now]
        if future:
            valid_until = min(future + ([valid_until] if valid_until else []))
        tables = {env: {} for env in policy_file.environments}
        for env, table in tables.items():
            index[(ecosystem.value, env)] = table
        _index_rules(policy_file, rules, tables, now)
    return Allowlist(policy, index, now, valid_until, grants, advisories)


def _index_rules(
    policy_file: PolicyFile, rules: list[Rule], tables: dict[str, dict[str, NameRules]], now: datetime
) -> None:
    """File each rule under its name in every environment it reaches through `extends`."""
    heirs = {
        env: [e for e in policy_file.environments if env in policy_file.lineage(e)] for env in policy_file.environments
    }
    reach: dict[frozenset[str], list[dict[str, NameRules]]] = {}
    for rule in rules:
        targets = reach.get(rule.environments)
        if targets is None:
            names = {heir for env in rule.environments for heir in heirs.get(env, ())}
            targets = reach[rule.environments] = [tables[env] for env in names]
        if rule.kind is RuleKind.DENY:
            slot = 1
        elif rule.expires_at is not None and rule.expires_at <= now:
            slot = 2
        else:
            slot = 0
        alone = NameRules((rule,), (), ()) if slot == 0 else None  # shared by every table it is new in
        for table in targets:
            known = table.get(rule.name)
            if known is None and alone is not None:
                table[rule.name] = alone
                continue
            entry = [(), (), ()] if known is None else list(known)
            entry[slot] = entry[slot] + (rule,)
            table[rule.name] = NameRules(*entry)


def _grant_rules(policy: PolicySet, grants: Iterable[ExceptionGrant], now: datetime) -> dict[Ecosystem, list[Rule]]:
    rules: dict[Ecosystem, list[Rule]] = {}
    for grant in grants:
        if grant.ecosystem not in policy.files:
            continue
        try:
            target = SCHEMAS[grant.ecosystem].grant_target(grant)
        except ValueError:
            continue  # validated when the request was made; a malformed row grants nothing
        rules.setdefault(grant.ecosystem, []).append(
            Rule(
                ecosystem=grant.ecosystem,
                kind=RuleKind.ALLOW,
                name=target.name,
                matcher=target.matcher,
                environments=grant.environments,
                reason=f"exception approved by {grant.approved_by}",
                origin=Origin(exception_id=grant.id),
                owner=grant.project,
                expires_at=grant.expires_at,
                channel=target.channel,
                waives=grant.waives,
            )
        )
    return rules
