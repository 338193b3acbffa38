"""`/conda/{env}/{channel}/{subdir}/…`: the curated channels rattler and conda read.

The published repodata is filtered once more by the current policy when served (a revoked
exception disappears at once, before the next sync), and a package file is served only if it is
in that filtered repodata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from mirror.clock import utc_now
from mirror.conda.channel import conda_facts, live_channel
from mirror.conda.indexer import PACKAGE_KEYS
from mirror.observability import DECISIONS
from mirror.parts import AllowlistDep, PartsDep, ServiceParts
from mirror.policy import Allowlist, Ecosystem
from mirror.refusals import refusal

router = APIRouter(prefix="/conda/{env}/{channel}/{subdir}", tags=["conda"])
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PACKAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(conda|tar\.bz2)$")


def _channel_dir(
    parts: ServiceParts, allowlist: Allowlist, env: str, channel: str, subdir: str
) -> tuple[Path | None, Response | None]:
    known = allowlist.environments(Ecosystem.CONDA)
    if not all(_COMPONENT.match(part) for part in (env, channel, subdir)):
        return None, refusal(404, "no such channel", route="conda")
    if env not in known:
        return None, refusal(
            404,
            f"unknown environment {env!r}; known environments: {', '.join(known) or 'none'} (use /conda/ENV/CHANNEL)",
            route="conda",
        )
    channels = allowlist.policy.files[Ecosystem.CONDA].context or {}
    if channel not in channels or subdir not in channels[channel].subdirs:
        names = ", ".join(f"{c}/{'|'.join(ch.subdirs)}" for c, ch in channels.items()) or "none"
        return None, refusal(
            404, f"no channel {channel}/{subdir} in allowlists/conda.yaml (configured: {names})", route="conda"
        )
    live = live_channel(parts.settings.data_dir, env, channel)
    if not (live / subdir / "repodata.json").is_file():
        return None, refusal(
            503,
            f"conda channel {env}/{channel} has not been synced yet: run `airlock sync conda --env {env}`",
            route="conda",
        )
    return live.resolve(), None


def _filtered(
    parts: ServiceParts, allowlist: Allowlist, build: Path, env: str, channel: str, subdir: str
) -> tuple[bytes, set[str]]:
    """The build's repodata minus what the current policy no longer admits, its conditions included
    (cached per generation, until a package withheld for its age comes of age)."""
    cache: dict = parts.conda_repodata
    key = (str(build), subdir, env, allowlist.generation)
    now = utc_now()
    found = cache.get(key)
    if found is None or (found[2] is not None and now >= found[2]):
        data = json.loads((build / subdir / "repodata.json").read_bytes())
        until, reasons = None, {}
        for package_key in PACKAGE_KEYS:
            kept = {}
            for name, record in data.get(package_key, {}).items():
                facts = conda_facts(record)
                judged, age = allowlist.judge_release(
                    Ecosystem.CONDA,
                    env,
                    record["name"],
                    str(record["version"]),
                    facts.licence,
                    record["build"],
                    channel=channel,
                    now=now,
                )
                if judged.allowed and (age is None or (facts.upload_time and facts.upload_time + age <= now)):
                    kept[name] = record
                    continue
                if judged.allowed:  # too young: its reason, and when it comes of age
                    judged = allowlist.judge(
                        Ecosystem.CONDA,
                        env,
                        record["name"],
                        str(record["version"]),
                        facts,
                        record["build"],
                        channel=channel,
                        now=now,
                    )
                if judged.condition is not None:
                    reasons[name] = judged.reason
                if judged.until is not None:
                    until = judged.until if until is None else min(until, judged.until)
            data[package_key] = kept
        if len(cache) > 64:
            cache.clear()
        found = cache[key] = (
            json.dumps(data, separators=(",", ":")).encode(),
            {n for k in PACKAGE_KEYS for n in data[k]},
            until,
            reasons,
        )
    return found[0], found[1]


def _withheld_reason(
    parts: ServiceParts, allowlist: Allowlist, build: Path, env: str, subdir: str, filename: str
) -> str | None:
    """Why a condition withholds `filename` (None: it is simply not allowlisted)."""
    found = parts.conda_repodata.get((str(build), subdir, env, allowlist.generation))
    return found[3].get(filename) if found else None


@router.get("/repodata.json", summary="The curated channel's repodata for one subdir")
def repodata(env: str, channel: str, subdir: str, parts: PartsDep, allowlist: AllowlistDep) -> Response:
    build, problem = _channel_dir(parts, allowlist, env, channel, subdir)
    if problem is not None:
        return problem
    body, _ = _filtered(parts, allowlist, build, env, channel, subdir)
    return Response(body, media_type="application/json")


@router.get("/{filename}", summary="A package file of the curated channel")
def package(env: str, channel: str, subdir: str, filename: str, parts: PartsDep, allowlist: AllowlistDep) -> Response:
    build, problem = _channel_dir(parts, allowlist, env, channel, subdir)
    if problem is not None:
        return problem
    if not _PACKAGE.match(filename):  # also repodata.json.zst/.bz2 and current_repodata.json: not produced
        return refusal(404, f"no such file {filename!r}", route="conda")
    _, listed = _filtered(parts, allowlist, build, env, channel, subdir)
    DECISIONS.labels("conda", env, "allowed" if filename in listed else "blocked").inc()
    if filename not in listed:
        withheld = _withheld_reason(parts, allowlist, build, env, subdir, filename)
        if withheld is not None:
            return refusal(404, f"{filename}: {withheld}", route="conda", subject=filename)
        return refusal(
            404,
            f"{filename} is not in the curated {env}/{channel} channel: it is not allowlisted for {env}"
            f" (airlock allowlist explain conda NAME=VERSION=BUILD --env {env})",
            route="conda",
            subject=filename,
        )
    path = parts.settings.data_dir / "conda" / "cache" / channel / subdir / filename
    if not path.is_file():
        return refusal(503, f"{filename} is listed but missing from the cache: run `airlock sync conda`", route="conda")
    return FileResponse(path, media_type="application/octet-stream")
