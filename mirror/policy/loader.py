"""Turn allowlist files (name + text) into validated rules, or every problem at once.

Pure: the caller reads the files and says what time it is. A file with any error contributes
nothing; `load_policy_files` raises `InvalidAllowlist` carrying every diagnostic of every file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mirror.policy.conda import CondaSchema
from mirror.policy.conditions import CONDITION_KEYS, NO_CONDITIONS, Conditions, read_conditions
from mirror.policy.containers import ContainersSchema
from mirror.policy.gate_rules import GATE_FILE, WAIVERS_FILE, GatePolicy, Waiver, read_gate_policy, read_waivers
from mirror.policy.interface import Diagnostic, Ecosystem, InvalidAllowlist, Origin, Rule, RuleKind
from mirror.policy.pypi import PypiSchema
from mirror.policy.schema import Diagnostics, EntryReader, EntrySchema, describe_type, unknown_key_message
from mirror.policy.targets import DEFAULT_TARGETS, Targets, read_targets
from mirror.policy.yamlsource import SourceDocument, YamlSyntaxError, parse_document

SCHEMAS: dict[Ecosystem, EntrySchema] = {
    schema.ecosystem: schema for schema in (PypiSchema(), CondaSchema(), ContainersSchema())
}
_ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENVIRONMENT_KEYS = frozenset({"extends", "description", "targets"}) | CONDITION_KEYS


@dataclass(frozen=True)
class PolicyFile:
    """One ecosystem's validated file."""

    ecosystem: Ecosystem
    file: str
    environments: dict[str, str | None]
    """Declared environments and the one each extends (None for a root)."""
    rules: tuple[Rule, ...]
    context: Any = None
    """Conda channels or container upstreams, by name."""
    targets: dict[str, Targets] = field(default_factory=dict)
    """PyPI: the resolution targets environments declare (`targets_of` applies `extends`)."""
    conditions: dict[str, Conditions] = field(default_factory=dict)
    """The conditions each environment declares itself (`conditions_of` applies `extends`)."""

    def conditions_of(self, environment: str) -> Conditions:
        """The environment's conditions, each key inherited from the nearest environment that sets it."""
        merged = NO_CONDITIONS
        for name in reversed(self.lineage(environment)):
            if name in self.conditions:
                merged = self.conditions[name].over(merged)
        return merged

    def targets_of(self, environment: str) -> Targets:
        """The environment's targets, else those of the environment it extends, else the default."""
        for name in self.lineage(environment):
            if name in self.targets:
                return self.targets[name]
        return DEFAULT_TARGETS

    def lineage(self, environment: str) -> tuple[str, ...]:
        """`preprod` -> (`preprod`, `prod`): the environments whose entries apply to it."""
        chain: list[str] = []
        current: str | None = environment
        while current is not None and current not in chain:
            chain.append(current)
            current = self.environments.get(current)
        return tuple(chain)


@dataclass(frozen=True)
class PolicySet:
    """Everything the allowlist folder says, validated."""

    files: dict[Ecosystem, PolicyFile] = field(default_factory=dict)
    gate: GatePolicy | None = None
    waivers: tuple[Waiver, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()


def load_policy_files(sources: Iterable[tuple[str, str]], now: datetime, waivers_file: str | None = None) -> PolicySet:
    """Validate `(file name, text)` pairs; raise `InvalidAllowlist` if any has an error.

    A file is read by its name: `gate.yaml`, `waivers.yaml`, else an ecosystem file; `waivers_file`
    names one more file to read as waivers whatever it is called (the gate's `--waivers FILE`)."""
    diagnostics: list[Diagnostic] = []
    files: dict[Ecosystem, PolicyFile] = {}
    gate: GatePolicy | None = None
    waivers: tuple[Waiver, ...] = ()
    for name, text in sources:
        try:
            document = parse_document(name, text)
        except YamlSyntaxError as exc:
            diagnostics.append(exc.diagnostic)
            continue
        collected = Diagnostics(document)
        base = os.path.basename(name)
        if base == GATE_FILE:
            gate = read_gate_policy(document, collected)
        elif base == WAIVERS_FILE or name == waivers_file:
            waivers = read_waivers(document, collected, now)
        else:
            policy_file = _read_ecosystem_file(document, collected, now)
            if policy_file is not None and policy_file.ecosystem in files:
                earlier = files[policy_file.ecosystem].file
                collected.error(
                    ("ecosystem",),
                    f"a second {policy_file.ecosystem.value} file (the first is {earlier}): keep one file per ecosystem",
                )
            elif policy_file is not None and not collected.has_errors:
                files[policy_file.ecosystem] = policy_file
        diagnostics.extend(collected.items)
    if any(d.severity == "error" for d in diagnostics):
        raise InvalidAllowlist(diagnostics)
    return PolicySet(files=files, gate=gate, waivers=waivers, warnings=tuple(sorted(diagnostics)))


def _read_ecosystem_file(document: SourceDocument, diagnostics: Diagnostics, now: datetime) -> PolicyFile | None:
    value = document.value
    if not isinstance(value, dict):
        diagnostics.error_at(1, f"the file must be a mapping with 'ecosystem:', got {describe_type(value)}")
        return None
    raw_ecosystem = value.get("ecosystem")
    try:
        ecosystem = Ecosystem(raw_ecosystem)
    except ValueError:
        known = ", ".join(e.value for e in Ecosystem)
        diagnostics.error(("ecosystem",), f"'ecosystem' must be one of {known}, got {describe_type(raw_ecosystem)}")
        return None
    schema = SCHEMAS[ecosystem]
    allowed_top = frozenset({"ecosystem", "environments", "deny", schema.list_key}) | schema.extra_top_level_keys
    for key in value.keys() - allowed_top:
        diagnostics.error((key,), unknown_key_message(key, allowed_top))
    environments, targets, conditions = _read_environments(document, diagnostics, ecosystem)
    context = schema.read_context(document, diagnostics)
    rules: list[Rule] = []
    for list_key, kind in ((schema.list_key, RuleKind.ALLOW), ("deny", RuleKind.DENY)):
        items = value.get(list_key)
        if items is None:
            continue
        if not isinstance(items, list):
            diagnostics.error((list_key,), f"{list_key!r} must be a list of entries, got {describe_type(items)}")
            continue
        rules.extend(_read_entries(document, diagnostics, schema, list_key, kind, items, environments, context, now))
    return PolicyFile(ecosystem, document.file, environments, tuple(rules), context, targets, conditions)


def _read_environments(
    document: SourceDocument, diagnostics: Diagnostics, ecosystem: Ecosystem
) -> tuple[dict[str, str | None], dict[str, Targets], dict[str, Conditions]]:
    raw = document.value.get("environments")
    if not isinstance(raw, dict) or not raw:
        diagnostics.error(
            ("environments",), "missing 'environments': declare them, e.g. {prod: {}, preprod: {extends: prod}}"
        )
        return {}, {}, {}
    environments: dict[str, str | None] = {}
    targets: dict[str, Targets] = {}
    conditions: dict[str, Conditions] = {}
    for name, body in raw.items():
        path = ("environments", name)
        if not isinstance(name, str) or not _ENVIRONMENT_NAME.match(name):
            diagnostics.error(path, f"invalid environment name {name!r}: use lowercase letters, digits, '-' or '_'")
            continue
        body = {} if body is None else body
        if not isinstance(body, dict):
            diagnostics.error(
                path,
                f"environment {name!r} must be a mapping like {{extends: prod}} or {{}}, got {describe_type(body)}",
            )
            continue
        for key in body.keys() - _ENVIRONMENT_KEYS:
            diagnostics.error(path + (key,), unknown_key_message(key, _ENVIRONMENT_KEYS))
        parent = body.get("extends")
        if parent is not None and not isinstance(parent, str):
            diagnostics.error(path + ("extends",), f"'extends' must name one environment, got {describe_type(parent)}")
            parent = None
        environments[name] = parent
        if body.keys() & CONDITION_KEYS:
            if ecosystem is Ecosystem.CONTAINERS:
                diagnostics.error(
                    path + (sorted(body.keys() & CONDITION_KEYS)[0],),
                    "conditions (min_age, block_vulnerable, block_malicious, licenses) apply to PyPI and conda "
                    "files; images are judged by the gate",
                )
            else:
                conditions[name] = read_conditions(
                    body,
                    lambda key, base=path: f"{document.file}:{document.line_of(base + (key,))}",
                    lambda key, message, base=path: diagnostics.error(base + (key,), message),
                )
        if "targets" in body:
            if ecosystem is not Ecosystem.PYPI:
                diagnostics.error(
                    path + ("targets",),
                    "'targets' (Python versions and platforms) apply to PyPI files; "
                    "conda resolves for the channel's subdirs",
                )
                continue
            declared = read_targets(
                body["targets"],
                lambda where, message, base=path: diagnostics.error(base + ("targets",) + where, message),
            )
            if declared is not None:
                targets[name] = declared
    for name, parent in environments.items():
        if parent is not None and parent not in environments:
            diagnostics.error(
                ("environments", name, "extends"),
                f"environment {name!r} extends unknown environment {parent!r} (declared: {', '.join(environments)})",
            )
    reported: set[str] = set()
    for name in environments:
        chain = [name]
        current = environments[name]
        while current is not None and current in environments and current not in chain:
            chain.append(current)
            current = environments[current]
        if current is not None and current in chain and not reported & set(chain):
            cycle = chain[chain.index(current) :] + [current]
            diagnostics.error(("environments", name, "extends"), "'extends' cycle: " + " -> ".join(cycle))
            reported.update(chain)
    return environments, targets, conditions


def _read_entries(
    document: SourceDocument,
    diagnostics: Diagnostics,
    schema: EntrySchema,
    list_key: str,
    kind: RuleKind,
    items: list[Any],
    environments: dict[str, str | None],
    context: Any,
    now: datetime,
) -> list[Rule]:
    deny = kind is RuleKind.DENY
    allowed_keys = schema.deny_keys if deny else schema.allow_keys
    declared = frozenset(environments)
    first_seen: dict[tuple[str, str | None, str], int] = {}
    env_sets: dict[tuple, frozenset[str] | None] = {}  # entries share a few environment lists
    rules: list[Rule] = []
    scanned = document.scanned_lines(list_key)
    file = document.file
    for index, raw in enumerate(items):
        line = scanned[index] if scanned is not None else document.item_line(list_key, index)
        if type(raw) is not dict:
            diagnostics.error_at(
                line,
                f"{list_key} entry must be a mapping ({schema.name_key}: ..., reason: ...), got {describe_type(raw)}",
            )
            continue
        quick = _quick_entry(raw, allowed_keys, declared, deny, schema, context, env_sets)
        if quick is not None:
            target, envs, reason, owner, expires_at = quick
            own_conditions = None
        else:
            entry = EntryReader(raw, (list_key, index), line, diagnostics)
            if not raw.keys() <= allowed_keys:
                entry.check_keys(allowed_keys)
            target = schema.read_target(entry, context, deny)
            own_conditions = (
                read_conditions(raw, lambda key, at=f"{file}:{line}": at, entry.error)
                if raw.keys() & CONDITION_KEYS
                else None
            )
            named = entry.strings("environments", required=not deny)
            reason = entry.text("reason", required=True, what=": say why the entry exists")
            owner = entry.text("owner", required=not deny, what=": name the team that answers for it")
            expires_at = None if deny else entry.expiry()
            if named is not None:
                unknown = [env for env in named if env not in declared]
                if unknown:
                    entry.error(
                        "environments", f"unknown environment {unknown[0]!r} (declared: {', '.join(environments)})"
                    )
                    named = None
            if target is None or reason is None or (named is None and not deny) or (owner is None and not deny):
                continue
            envs = declared if named is None else frozenset(named)
        if not deny:
            duplicate = _first_duplicate(first_seen, target.name, target.channel, envs, line)
            if duplicate is not None:
                env, earlier = duplicate
                EntryReader(raw, (list_key, index), line, diagnostics).error(
                    schema.name_key,
                    f"duplicate entry for {target.name} in {env} (first at line {earlier}): merge them into one entry",
                )
                continue
        # Positional: this runs once per entry, and keywords cost a third more.
        rule = Rule(
            schema.ecosystem,
            kind,
            target.name,
            target.matcher,
            envs,
            reason,
            Origin(file, line),
            owner,
            expires_at,
            target.channel,
            own_conditions,
        )
        if expires_at is not None and expires_at <= now:
            diagnostics.warning_at(
                line,
                f"entry for {target.name} expired on {rule.expiry_text}: it allows nothing until renewed or removed",
            )
        rules.append(rule)
    return rules


_STRINGS = {str}


def _quick_entry(
    raw: dict[str, Any],
    allowed_keys: frozenset[str],
    declared: frozenset[str],
    deny: bool,
    schema: EntrySchema,
    context: Any,
    env_sets: dict[tuple, frozenset[str] | None],
) -> tuple | None:
    """The common, well-formed entry without the per-field reader: 100,000-rule files load in
    about half the time. Anything unusual (a missing field, an expiry, stray spaces, an
    unknown environment) returns None and goes through the reader, which reports problems."""
    if "expires" in raw or not raw.keys() <= allowed_keys or raw.keys() & CONDITION_KEYS:
        return None
    reason, owner, named = raw.get("reason"), raw.get("owner"), raw.get("environments")
    # Inline rather than a helper: this runs once per entry of 100,000-rule files.
    if type(reason) is not str or not reason or reason != reason.strip():
        return None
    if not (type(owner) is str and owner and owner == owner.strip()) and not (deny and owner is None):
        return None
    if named is None:
        if not deny:
            return None
        envs = declared
    else:
        if type(named) is not list or not named:
            return None
        # Entries share a few environment lists: each distinct one is checked once.
        try:
            key = tuple(named)
            envs = env_sets[key]
        except TypeError:  # an unhashable item (a mapping): the reader reports it
            return None
        except KeyError:
            valid = set(map(type, named)) <= _STRINGS and declared.issuperset(named)
            envs = env_sets[key] = frozenset(named) if valid else None
        if envs is None:
            return None
    target = schema.quick_target(raw, context, deny)
    if target is None:
        return None
    return target, envs, reason, owner, None


def _first_duplicate(
    first_seen: dict[tuple[str, str | None, str], int], name: str, channel: str | None, envs: frozenset[str], line: int
) -> tuple[str, int] | None:
    if len(envs) == 1:
        (env,) = envs
        key = (name, channel, env)
        earlier = first_seen.setdefault(key, line)
        return (env, earlier) if earlier != line else None
    for env in sorted(envs):
        earlier = first_seen.get((name, channel, env))
        if earlier is not None:
            return env, earlier
    for env in envs:
        first_seen[(name, channel, env)] = line
    return None
