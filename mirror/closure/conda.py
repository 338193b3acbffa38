"""Conda closure: the environment's entries against the upstream channels' repodata.

What `airlock sync conda` would select is what the environment serves; every dependency (a
MatchSpec in a selected record's `depends`) that nothing selected satisfies is missing, named with
the record that needs it and the subdirs it is needed on. Virtual packages (`__glibc`) come from
the machine and are not asked of the channel.
"""

from __future__ import annotations

import time

import httpx

from mirror.closure.interface import ClosureError, ClosureReport, Missing
from mirror.conda.channel import closure_gaps, select
from mirror.conda.download import FetchError, fetch_repodata
from mirror.policy import Allowlist, Ecosystem


def conda_closure(allowlist: Allowlist, env: str, timeout: float) -> ClosureReport:
    started = time.monotonic()
    policy_file = allowlist.policy.files[Ecosystem.CONDA]
    channels = policy_file.context or {}
    upstream: dict[tuple[str, str], dict] = {}
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for channel in channels.values():
            for subdir in channel.subdirs:
                try:
                    upstream[(channel.name, subdir)] = fetch_repodata(client, f"{channel.url}/{subdir}/repodata.json")
                except FetchError as exc:
                    raise ClosureError(f"could not decide for {env}: {exc}") from None
    selection = {env: select(allowlist, env, channels, upstream)}
    owners = {rule.name: rule.owner for rule, state in allowlist.rules(Ecosystem.CONDA, env) if state == "allow"}
    found: dict[tuple[str, str], dict] = {}
    for gap in closure_gaps(allowlist, [env], channels, selection, upstream):
        name = gap.dependency.split()[0].split("[")[0]
        entry = found.setdefault(
            (name, gap.dependency),
            {"required_by": f"{gap.package} {gap.version}", "targets": [], "owner": owners.get(gap.package)},
        )
        if gap.subdir not in entry["targets"]:
            entry["targets"].append(gap.subdir)
    missing = tuple(
        Missing(
            name, dependency, (entry["required_by"],), tuple(entry["targets"]), owner=entry["owner"], ecosystem="conda"
        )
        for (name, dependency), entry in sorted(found.items())
    )
    targets = tuple(sorted({subdir for channel in channels.values() for subdir in channel.subdirs}))
    entries = len({rule.name for rule, state in allowlist.rules(Ecosystem.CONDA, env) if state == "allow"})
    return ClosureReport(env, "conda", missing, (), targets, entries, time.monotonic() - started)
