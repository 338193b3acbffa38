"""The effective allowlist: files ∪ approved, unexpired exceptions − deny, per environment.

An `Allowlist` is built once (`build_allowlist`) and never changes; whoever watches the files
builds a new one and swaps the reference. Lookups go through a per-environment dict keyed by the
normalised name, and every answer is memoised for the lifetime of the object.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring as json_string  # C-fast quoting for the hint
from typing import NamedTuple

from mirror.policy.advisories import AdvisoryIndex
from mirror.policy.conditions import AdvisoryFact, Conditions, ReleaseFacts, evaluate
from mirror.policy.interface import (
    Decision,
    Ecosystem,
    ExceptionGrant,
    Rule,
    UnknownEnvironment,
)
from mirror.policy.loader import SCHEMAS, PolicySet

_MEMO_LIMIT = 200_000
_AGE = frozenset({"min_age"})
_generation = itertools.count(1)
_ECOSYSTEMS: dict[Ecosystem | str, Ecosystem] = {**{e.value: e for e in Ecosystem}, **{e: e for e in Ecosystem}}
# Keyed by the plain string: hashing an Enum member runs Python code, a str hashes in C.
_NORMALIZERS = {e.value: schema.normalize_name for e, schema in SCHEMAS.items()}


class NameRules(NamedTuple):
    """Everything one environment says about one name (a tuple: 100,000s are built per load)."""

    allows: tuple[Rule, ...] = ()
    denies: tuple[Rule, ...] = ()
    expired: tuple[Rule, ...] = ()


class Allowlist:
    """Immutable answer to "may NAME VERSION enter ENV?" for every ecosystem."""

    def __init__(
        self,
        policy: PolicySet,
        index: dict[tuple[str, str], dict[str, NameRules]],
        built_at: datetime,
        valid_until: datetime | None,
        grants: tuple[ExceptionGrant, ...] = (),
        advisories: AdvisoryIndex | None = None,
    ) -> None:
        self.policy = policy
        self.grants = grants
        self.advisories = advisories
        """The merged advisories conditions read (None: no advisory folder configured)."""
        self._rule_of: dict[int, Rule] = {}
        self._conditions: dict[tuple[str, str, int], Conditions] = {}
        self._facts: dict[tuple[str, str], tuple[AdvisoryFact, ...]] = {}
        self._releases: dict[tuple, tuple[Decision, timedelta | None]] = {}
        self._waived_by: dict[int, Decision] = {}
        """The approved exceptions it was built with."""
        self._index = index
        self.built_at = built_at
        self.valid_until = valid_until
        """The next instant an entry or exception expires: rebuild then."""
        self.generation = next(_generation)
        self._memo: dict[tuple[str, str, str, str, str | None, str | None], Decision] = {}
        self._allowed_by: dict[int, Decision] = {}
        """One `allowed` Decision per rule (by id; the index keeps every rule alive)."""

    def environments(self, ecosystem: Ecosystem | str) -> list[str]:
        policy_file = self.policy.files.get(Ecosystem(ecosystem))
        return list(policy_file.environments) if policy_file else []

    def is_stale(self, now: datetime) -> bool:
        return self.valid_until is not None and now >= self.valid_until

    def decide(
        self,
        ecosystem: Ecosystem | str,
        env: str,
        name: str,
        version: str,
        build: str | None = None,
        *,
        channel: str | None = None,
    ) -> Decision:
        """Decide one question; raises `UnknownEnvironment` for an undeclared environment."""
        key = (ecosystem, env, name, version, build, channel)
        decision = self._memo.get(key)
        if decision is None:
            known = _ECOSYSTEMS.get(ecosystem)
            if known is None:
                raise ValueError(f"unknown ecosystem {ecosystem!r} (known: {', '.join(e.value for e in Ecosystem)})")
            decision = self._decide(known, env, name, version, build, channel)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()  # bounded: names come from untrusted URLs
            self._memo[key] = decision
        return decision

    def _decide(
        self, ecosystem: Ecosystem, env: str, name: str, version: str, build: str | None, channel: str | None
    ) -> Decision:
        table = self._index.get((ecosystem.value, env))
        if table is None:
            raise UnknownEnvironment(ecosystem, env, self.environments(ecosystem))
        normalized = _NORMALIZERS[ecosystem.value](name)
        rules = table.get(normalized)
        if rules is None:
            return Decision(
                False,
                f"blocked: {normalized} is not on the {env} allowlist; {how_to_ask(ecosystem, env, normalized, version)}",
            )
        for rule in rules.denies:
            if rule.matcher.matches(version, build):
                shown = _shown(ecosystem, normalized, version, build)
                return Decision(
                    False,
                    f"blocked: {shown} is denied by {rule.origin} ({rule.reason}); deny entries override every allow and exception",
                    str(rule.origin),
                )
        candidates = rules.allows if channel is None else tuple(r for r in rules.allows if r.channel in (None, channel))
        for rule in candidates:
            if rule.matcher.matches(version, build):
                allowed = self._allowed_by.get(id(rule))
                if allowed is None:
                    allowed = self._allowed_by[id(rule)] = Decision(
                        True, f"allowed by {_cite(rule)} ({rule.summary})", str(rule.origin)
                    )
                    self._rule_of[id(allowed)] = rule
                return allowed
        for rule in rules.expired:
            if rule.matcher.matches(version, build):
                return Decision(
                    False,
                    f"blocked: {_cite(rule)} ({rule.summary}) expired on {rule.expiry_text}; "
                    f"renew the entry, or {how_to_ask(ecosystem, env, normalized, version)}",
                    str(rule.origin),
                )
        if candidates:
            nearest = candidates[0]
            why = nearest.matcher.why_not(version, build)
            joint = "" if why[:1] in ":@" else " "  # image references read `repo:tag`, `repo@digest`
            return Decision(
                False,
                f"blocked: {normalized}{joint}{why} (the {env} entry is {_cite(nearest)}); {how_to_ask(ecosystem, env, normalized, version, build)}",
                str(nearest.origin),
            )
        return Decision(
            False,
            f"blocked: {normalized} is not on the {env} allowlist for channel {channel}; {how_to_ask(ecosystem, env, normalized, version)}",
        )

    def judge(
        self,
        ecosystem: Ecosystem | str,
        env: str,
        name: str,
        version: str,
        facts: ReleaseFacts = ReleaseFacts(),
        build: str | None = None,
        *,
        channel: str | None = None,
        now: datetime | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Decision:
        """`decide`, then the conditions of the environment (and of the allowing entry) on the
        file's facts: its upload time and licence as given, its advisories from `advisories`."""
        decision = self.decide(ecosystem, env, name, version, build, channel=channel)
        if not decision.allowed:
            return decision
        rule = self._rule_of[id(decision)]
        conditions = self.conditions_for(rule, env)
        if not conditions.active:
            return decision
        known = _ECOSYSTEMS[rule.ecosystem]
        checks_advisories = {"block_vulnerable", "block_malicious"} - skip
        if (
            known is Ecosystem.PYPI
            and checks_advisories
            and (conditions.block_vulnerable or conditions.block_malicious)
        ):
            if self.advisories is None:  # fail closed: the condition cannot be checked
                named = "block_vulnerable" if conditions.block_vulnerable else "block_malicious"
                return Decision(
                    False,
                    f"withheld: {env} sets {named} ({conditions.where.get(named, '?')}), but Airlock has no advisories "
                    "to check it against: set AIRLOCK_ADVISORIES to an OSV folder (or --advisories)",
                    decision.rule,
                    named,
                )
            if not facts.advisories:
                facts = facts._replace(advisories=self.advisory_facts(rule.name, version))
        shown = _shown(known, rule.name, version, build)
        now = now or datetime.now(UTC)
        withheld = evaluate(conditions, shown, env, facts, now, rule.waives | skip)
        if withheld is None:
            return decision
        waiver = self._waiver(known, env, rule.name, version, build, channel, withheld.condition)
        if (
            waiver is not None
            and evaluate(self.conditions_for(waiver, env), shown, env, facts, now, waiver.waives | skip) is None
        ):
            waived = self._waived_by.get(id(waiver))
            if waived is None:  # one per exception, kept alive with it: `rule_for` finds the exception
                waived = self._waived_by[id(waiver)] = Decision(
                    True,
                    f"allowed by {_cite(waiver)} ({waiver.summary}), which waives {', '.join(sorted(waiver.waives))}",
                    str(waiver.origin),
                )
                self._rule_of[id(waived)] = waiver
            return waived
        return Decision(False, f"withheld: {withheld.reason}", decision.rule, withheld.condition, withheld.until)

    def _waiver(
        self,
        ecosystem: Ecosystem,
        env: str,
        name: str,
        version: str,
        build: str | None,
        channel: str | None,
        condition: str,
    ) -> Rule | None:
        """An approved exception that admits this version and waives `condition` for it."""
        table = self._index.get((ecosystem.value, env))
        rules = table.get(name) if table else None
        for rule in rules.allows if rules else ():
            if condition in rule.waives and rule.channel in (None, channel) and rule.matcher.matches(version, build):
                return rule
        return None

    def wants_licence(self, ecosystem: Ecosystem | str, env: str, name: str) -> bool:
        """Whether a condition on `name` in `env` reads licences (so that callers fetch them only then)."""
        known = _ECOSYSTEMS[ecosystem]
        table = self._index.get((known.value, env))
        rules = table.get(_NORMALIZERS[known.value](name)) if table else None
        for rule in rules.allows if rules else ():
            conditions = self.conditions_for(rule, env)
            if conditions.licenses_deny or conditions.licenses_unknown == "deny":
                return True
        return False

    def rule_for(self, decision: Decision) -> Rule | None:
        """The entry or exception that allowed `decision` (None for a refusal)."""
        return self._rule_of.get(id(decision))

    def judge_release(
        self,
        ecosystem: Ecosystem | str,
        env: str,
        name: str,
        version: str,
        licence: str | None = None,
        build: str | None = None,
        *,
        channel: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Decision, timedelta | None]:
        """`judge` of everything but a file's age, once per release: (the decision, the `min_age`
        each of its files must still meet, or None). Pages and channels judge thousands of files
        of a few hundred releases; the age is then a comparison per file."""
        key = (ecosystem, env, name, version, licence, build, channel)
        found = self._releases.get(key)  # nothing but the age depends on the time: kept per allowlist
        if found is None:
            decision = self.judge(
                ecosystem, env, name, version, ReleaseFacts(None, licence), build, channel=channel, now=now, skip=_AGE
            )
            rule = self._rule_of.get(id(decision)) if decision.allowed else None
            age = None if rule is None or "min_age" in rule.waives else self.conditions_for(rule, env).min_age
            if age is not None and self._waiver(
                _ECOSYSTEMS[ecosystem], env, rule.name, version, build, channel, "min_age"
            ):
                age = None
            if len(self._releases) >= _MEMO_LIMIT:
                self._releases.clear()
            found = self._releases[key] = (decision, age)
        return found

    def conditions_for(self, rule: Rule, env: str) -> Conditions:
        """The environment's conditions with the entry's own over them."""
        ecosystem = _ECOSYSTEMS[rule.ecosystem]
        key = (ecosystem.value, env, id(rule))
        found = self._conditions.get(key)
        if found is None:
            found = self.policy.files[ecosystem].conditions_of(env)
            if rule.conditions is not None:
                found = rule.conditions.over(found)
            self._conditions[key] = found
        return found

    def advisory_facts(self, name: str, version: str) -> tuple[AdvisoryFact, ...]:
        """The advisories that affect PyPI `name` `version`, as conditions read them."""
        key = (name, version)
        found = self._facts.get(key)
        if found is None:
            found = tuple(
                AdvisoryFact(
                    v.id,
                    v.severity,
                    any(i.startswith("MAL-") for i in v.ids),
                    tuple(v.affected[name].fixed_versions) if name in v.affected else (),
                )
                for v in (self.advisories.affecting(name, version) if self.advisories else ())
            )
            if len(self._facts) >= _MEMO_LIMIT:
                self._facts.clear()
            self._facts[key] = found
        return found

    def decide_name(self, ecosystem: Ecosystem | str, env: str, name: str) -> Decision:
        """May any version of `name` enter `env`? (Whether to show a project page at all.)"""
        known = Ecosystem(ecosystem)
        table = self._index.get((known.value, env))
        if table is None:
            raise UnknownEnvironment(known, env, self.environments(known))
        normalized = _NORMALIZERS[known.value](name)
        rules = table.get(normalized)
        if rules is None or not rules.allows:
            expired = rules.expired[0] if rules and rules.expired else None
            if expired is not None:
                return Decision(
                    False,
                    f"blocked: {_cite(expired)} ({expired.summary}) expired on {expired.expiry_text}; "
                    f"renew the entry, or {how_to_ask(known, env, normalized, None)}",
                    str(expired.origin),
                )
            return Decision(
                False,
                f"blocked: {normalized} is not on the {env} allowlist; {how_to_ask(known, env, normalized, None)}",
            )
        for rule in rules.denies:
            if rule.matcher.unrestricted:
                return Decision(
                    False,
                    f"blocked: {normalized} is denied by {rule.origin} ({rule.reason}); deny entries override every allow and exception",
                    str(rule.origin),
                )
        first = rules.allows[0]
        return Decision(True, f"listed by {_cite(first)} ({first.summary})", str(first.origin))

    def names(self, ecosystem: Ecosystem | str, env: str) -> list[str]:
        """Names with at least one version allowed in `env`, sorted (the simple index)."""
        known = Ecosystem(ecosystem)
        table = self._index.get((known.value, env))
        if table is None:
            raise UnknownEnvironment(known, env, self.environments(known))
        return sorted(
            name
            for name, rules in table.items()
            if rules.allows and not any(d.matcher.unrestricted for d in rules.denies)
        )

    def rules(self, ecosystem: Ecosystem | str, env: str) -> Iterator[tuple[Rule, str]]:
        """Every rule in force for `env`, with its state: `allow`, `deny` or `expired`."""
        table = self._index.get((Ecosystem(ecosystem).value, env))
        if table is None:
            raise UnknownEnvironment(Ecosystem(ecosystem), env, self.environments(ecosystem))
        for name in sorted(table):
            entry = table[name]
            for rule in entry.allows:
                yield rule, "allow"
            for rule in entry.denies:
                yield rule, "deny"
            for rule in entry.expired:
                yield rule, "expired"


def _cite(rule: Rule) -> str:
    if rule.origin.exception_id is not None:
        return f"exception {rule.origin.exception_id}"
    return str(rule.origin)


def _shown(ecosystem: Ecosystem, name: str, version: str, build: str | None) -> str:
    if ecosystem is Ecosystem.CONTAINERS:
        return f"{name}@{version}" if version.startswith("sha256:") else f"{name}:{version}"
    if ecosystem is Ecosystem.CONDA and build:
        return f"{name} {version} {build}"
    return f"{name} {version}"


def how_to_ask(ecosystem: Ecosystem, env: str, name: str, version: str | None, build: str | None = None) -> str:
    """The next step for a blocked user: the exception request that would unblock them."""
    if version is None:
        package, versions = name, ""
    elif ecosystem is Ecosystem.CONDA:
        package = f"{name} =={version} {build}" if build else f"{name} =={version}"
        versions = ""
    else:
        package = name
        versions = f', "versions": {json_string(f"=={version}" if ecosystem is Ecosystem.PYPI else version)}'
    return (
        f'to ask for it, request an exception: POST /api/v1/exceptions {{"ecosystem": "{ecosystem.value}", '
        f'"package": {json_string(package)}{versions}, "environments": [{json_string(env)}]}} '
        'plus "project" and "justification"'
    )
