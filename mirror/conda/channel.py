"""Curated conda channels: select what the allowlist admits, index it with conda-index, check the
result, and publish it with one symlink switch.

Layout under `{data}/conda/`:
  cache/{channel}/{subdir}/{file}        verified package files, shared by every environment
  staging/{env}/{channel}/{subdir}/      hard links to the selected files + conda-index's cache
  builds/{env}-{channel}-{stamp}/{subdir}/repodata.json   one published generation
  {env}/{channel} -> builds/…            the live channel (a symlink, swapped atomically)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rattler import MatchSpec

from mirror.conda.download import FetchError, VerifiedCache, Wanted, fetch_repodata
from mirror.conda.indexer import (
    PACKAGE_KEYS,
    WARM_FROM_FILES,
    IndexWarmer,
    index_subdirs,
    index_threads,
    indexed_files,
    staging_folder,
)
from mirror.policy import Allowlist, Ecosystem
from mirror.policy.conda import CondaChannel, package_record
from mirror.policy.conditions import ReleaseFacts


@dataclass
class SyncReport:
    published: list[str] = field(default_factory=list)
    """`env/channel` published with a new generation."""
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Failures: nothing new was published."""
    warnings: list[str] = field(default_factory=list)
    """Closure gaps and the like: published, but someone should act."""
    files: int = 0
    live_after: float | None = None
    """Seconds from the start of the sync until the last new generation was live."""
    added: dict[str, set[str]] = field(default_factory=dict)
    """Package names that entered each environment; `*` when something left (re-check all)."""


def conda_facts(record: dict) -> ReleaseFacts:
    """A repodata record's facts: `timestamp` (milliseconds; seconds in old records) and `license`."""
    stamp = record.get("timestamp")
    uploaded = None
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp > 0:
        seconds = stamp / 1000 if stamp > 1e11 else stamp
        with contextlib.suppress(OverflowError, OSError, ValueError):
            uploaded = datetime.fromtimestamp(seconds, UTC)
    licence = record.get("license")
    return ReleaseFacts(uploaded, licence if isinstance(licence, str) and licence.strip() else None)


def select(
    allowlist: Allowlist, env: str, channels: dict[str, CondaChannel], upstream: dict[tuple[str, str], dict]
) -> dict[tuple[str, str, str], Wanted]:
    """The upstream files the environment's entries admit."""
    chosen: dict[tuple[str, str, str], Wanted] = {}
    for (channel, subdir), repodata in upstream.items():
        base = channels[channel].url
        for key in PACKAGE_KEYS:
            for filename, record in repodata.get(key, {}).items():
                if not isinstance(record, dict) or not all(
                    k in record for k in ("name", "version", "build", "sha256", "size")
                ):
                    continue
                if "/" in filename or filename.startswith("."):
                    continue
                licence = record.get("license")
                decision, _ = allowlist.judge_release(
                    Ecosystem.CONDA,
                    env,
                    record["name"],
                    str(record["version"]),
                    licence if isinstance(licence, str) and licence.strip() else None,
                    record["build"],
                    channel=channel,
                )
                # Age is not judged here: too young now is not too young for ever (served once of age).
                if decision.allowed:
                    chosen[(channel, subdir, filename)] = Wanted(
                        channel, subdir, filename, f"{base}/{subdir}/{filename}", record["sha256"], int(record["size"])
                    )
    return chosen


def live_channel(data_dir: Path, env: str, channel: str) -> Path:
    return data_dir / "conda" / env / channel


class CondaSync:
    def __init__(self, data_dir: Path, client: httpx.Client) -> None:
        self.root = data_dir / "conda"
        self.data_dir = data_dir
        self.client = client
        self.cache = VerifiedCache(self.root / "cache")
        self._unwarmed_bytes = 0
        """Staged by the warm-up after its last round began: new to conda-index at the publish."""

    def run(self, allowlist: Allowlist, environments: list[str] | None = None) -> SyncReport:
        report = SyncReport()
        self._started = time.monotonic()
        policy_file = allowlist.policy.files.get(Ecosystem.CONDA)
        if policy_file is None:
            report.problems.append("no conda allowlist (allowlists/conda.yaml): nothing to sync")
            return report
        envs = environments or list(policy_file.environments)
        unknown = [env for env in envs if env not in policy_file.environments]
        if unknown:
            report.problems.append(
                f"unknown environment {unknown[0]!r} for conda (known: {', '.join(policy_file.environments)})"
            )
            return report
        channels: dict[str, CondaChannel] = policy_file.context or {}
        upstream: dict[tuple[str, str], dict] = {}
        for channel in channels.values():
            for subdir in channel.subdirs:
                try:
                    upstream[(channel.name, subdir)] = fetch_repodata(
                        self.client, f"{channel.url}/{subdir}/repodata.json"
                    )
                except FetchError as exc:
                    report.problems.append(str(exc))
        if report.problems:
            return report
        selection = {env: select(allowlist, env, channels, upstream) for env in envs}
        wanted = {w.key: w for chosen in selection.values() for w in chosen.values()}
        report.files = len(wanted)
        report.problems += self._download(list(wanted.values()), selection)
        if report.problems:
            return report  # publish nothing new: the previous channels stay served
        for env in envs:
            for channel in channels.values():
                chosen = {key: w for key, w in selection[env].items() if w.channel == channel.name}
                self._publish(env, channel, chosen, upstream, report)
        if not report.problems:
            report.warnings += [str(gap) for gap in closure_gaps(allowlist, envs, channels, selection, upstream)]
            report.warnings += unsolvable_specs(self.data_dir, allowlist, envs, channels, report.added)
        return report

    def _download(self, wanted: list[Wanted], selection: dict[str, dict]) -> list[str]:
        """Fetch and verify what the cache lacks; on a big download, warm conda-index meanwhile."""
        missing = self.cache.missing(wanted)
        self._unwarmed_bytes = 0
        if len(missing) < WARM_FROM_FILES:
            return self.cache.ensure(self.client, missing)
        warmer = IndexWarmer(self.root, self.cache.root, selection)
        with ThreadPoolExecutor(max_workers=1) as downloads:
            pending = downloads.submit(self.cache.ensure, self.client, missing, on_verified=warmer.add)
            warmer.run_until(pending)
            self._unwarmed_bytes = warmer.unwarmed_bytes
            return pending.result()

    def _publish(self, env: str, channel: CondaChannel, chosen: dict, upstream: dict, report: SyncReport) -> None:
        label = f"{env}/{channel.name}"
        staging = staging_folder(self.root, env, channel.name)
        live = live_channel(self.data_dir, env, channel.name)
        previous = live.resolve() if live.is_symlink() else None
        changed: list[str] = []
        new_bytes = self._unwarmed_bytes
        for subdir in channel.subdirs:
            folder = staging / subdir
            folder.mkdir(parents=True, exist_ok=True)
            want = {filename for (ch, sd, filename) in chosen if sd == subdir}
            with os.scandir(folder) as entries:
                have = {e.name for e in entries if e.name.endswith((".conda", ".tar.bz2")) and e.is_file()}
            for name in have - want:
                (folder / name).unlink()
            for name in want - have:
                os.link(self.cache.root / channel.name / subdir / name, folder / name)
                new_bytes += chosen[(channel.name, subdir, name)].size
            live_repodata = previous / subdir / "repodata.json" if previous is not None else None
            # Against what is live, not what staging held: files may have been linked by the
            # index warm-up, or by a sync whose publish failed.
            live_files = indexed_files(live_repodata) if live_repodata is not None and live_repodata.exists() else None
            for name in want - (live_files or set()):
                report.added.setdefault(env, set()).add(name.rsplit("-", 2)[0].lower())
            if live_files is not None and live_files - want:
                report.added.setdefault(env, set()).add("*")
            if live_files != want:
                changed.append(subdir)
        if not changed:
            report.unchanged.append(label)
            return
        build = (
            self.root
            / "builds"
            / f"{env}-{channel.name}-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**9}"
        )
        build.mkdir(parents=True)
        try:
            index_subdirs(staging, changed, build, threads=index_threads(new_bytes))
            for subdir in channel.subdirs:
                if subdir not in changed:  # unchanged since the live generation: carry it over
                    shutil.copytree(previous / subdir, build / subdir)
                want = {filename for (ch, sd, filename) in chosen if sd == subdir}
                got = indexed_files(build / subdir / "repodata.json")
                if got != want:
                    missing, extra = sorted(want - got), sorted(got - want)
                    raise FetchError(
                        f"{label}/{subdir}: conda-index output differs from the verified files"
                        f" (skipped: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"
                    )
        except FetchError as exc:
            shutil.rmtree(build, ignore_errors=True)
            report.problems.append(str(exc))
            return
        swap_symlink(live, build)
        report.published.append(label)
        report.live_after = time.monotonic() - self._started
        if previous is not None and previous.parent == build.parent:
            shutil.rmtree(previous, ignore_errors=True)


def swap_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` in one rename: readers see the old or the new, never neither."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.new")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)


@dataclass(frozen=True)
class ClosureGap:
    """A dependency of a selected package that nothing selected for the environment satisfies."""

    environment: str
    subdir: str
    package: str
    version: str
    dependency: str
    """The MatchSpec the package depends on."""

    def __str__(self) -> str:
        return (
            f"{self.package} {self.version} needs {self.dependency} which is not allowlisted for {self.environment}:"
            " add a matching entry to allowlists/conda.yaml or request an exception"
        )


def closure_gaps(
    allowlist: Allowlist, envs: list[str], channels: dict[str, CondaChannel], selection: dict[str, dict], upstream: dict
) -> list[ClosureGap]:
    """Dependencies of selected packages that nothing selected satisfies."""
    gaps: list[ClosureGap] = []
    for env in envs:
        records = []
        for channel, subdir, filename in selection[env]:
            repodata = upstream[(channel, subdir)]
            record = repodata.get("packages.conda" if filename.endswith(".conda") else "packages", {}).get(filename)
            if record:
                records.append((subdir, record))
        by_name: dict[str, list[dict]] = {}
        for _, record in records:
            by_name.setdefault(record["name"], []).append(record)
        seen: set[tuple[str, str, str]] = set()
        for subdir, record in records:
            for dependency in record.get("depends", []):
                try:
                    spec = MatchSpec(dependency)
                except Exception:
                    continue
                name = spec.name.normalized
                if name.startswith("__"):
                    continue  # virtual packages (__glibc, __cuda) come from the machine
                if any(_satisfies(spec, candidate) for candidate in by_name.get(name, [])):
                    continue
                key = (record["name"], str(record["version"]), dependency)
                if key not in seen:
                    seen.add(key)
                    gaps.append(ClosureGap(env, subdir, record["name"], str(record["version"]), dependency))
    return gaps


def _satisfies(spec: MatchSpec, record: dict) -> bool:
    candidate = package_record(record["name"], str(record["version"]), record.get("build"))
    return candidate is not None and spec.matches(candidate)


def unsolvable_specs(
    data_dir: Path, allowlist: Allowlist, envs: list[str], channels: dict[str, CondaChannel], added: dict[str, set[str]]
) -> list[str]:
    """Solve allowlisted specs with py-rattler against the published channel alone: every spec
    after something left an environment (or on its first publish), else the specs of the names
    that entered it (adding packages cannot break what solved before)."""
    import asyncio

    from rattler import Gateway, solve

    # One gateway for every solve: it reads each published repodata.json once and keeps it,
    # instead of once per spec (500 specs of a 2,000-package channel: 2.7 s -> see bench/conda.py).
    gateway = Gateway()

    async def check(env: str, spec: str, sources: list[str], platforms: list[str]) -> str | None:
        try:
            await solve(sources=sources, specs=[spec], platforms=platforms, gateway=gateway)
        except Exception as exc:  # the solver's own error types; the message is what matters
            said = " ".join(part.strip(" │├└─") for part in str(exc).strip().splitlines() if part.strip(" │├└─"))
            return f"{spec} cannot be installed from the curated {env} channel alone (rattler: {said[:400] or exc.__class__.__name__})"
        return None

    async def check_all() -> list[str]:
        jobs = []
        for env in envs:
            names_in = added.get(env, set())
            for rule, state in allowlist.rules(Ecosystem.CONDA, env):
                if state != "allow" or not hasattr(rule.matcher, "spec"):
                    continue
                if "*" not in names_in and rule.name not in names_in:
                    continue
                names = [rule.channel] if rule.channel else list(channels)
                sources = [
                    live_channel(data_dir, env, name).resolve().as_uri()
                    for name in names
                    if live_channel(data_dir, env, name).exists()
                ]
                platforms = sorted({subdir for name in names for subdir in channels[name].subdirs})
                if sources:
                    jobs.append(check(env, str(rule.matcher.spec), sources, platforms))
        return [message for message in await asyncio.gather(*jobs) if message]

    return asyncio.run(check_all())
