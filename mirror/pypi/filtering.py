"""A project page filtered for one environment: each file judged by the allowlist — its version by
the entries, then the file by the environment's conditions on its facts (upload time, licence,
advisories) — and rendered once per (environment, allowlist generation, media type) until a
withheld file becomes old enough to be served."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from mirror.policy import Allowlist, Decision, Ecosystem
from mirror.policy.conditions import ReleaseFacts
from mirror.pypi.pages import CachedPage
from mirror.pypi.simple import JSON_V1, FileLink, ProjectStatus, parse_filename, render_html, render_json

LicenceOf = Callable[[FileLink], "str | None"]


def upload_instant(link: FileLink) -> datetime | None:
    if not link.upload_time:
        return None
    try:
        return datetime.fromisoformat(link.upload_time)  # 3.11 reads PEP 700's trailing Z
    except ValueError:
        return None


def judge_file(
    allowlist: Allowlist,
    env: str,
    project: str,
    version: str,
    link: FileLink,
    licence_of: LicenceOf | None,
    now: datetime,
) -> Decision:
    licence = licence_of(link) if licence_of is not None else None
    return allowlist.judge(Ecosystem.PYPI, env, project, version, ReleaseFacts(upload_instant(link), licence), now=now)


def rendered(
    cached: CachedPage,
    allowlist: Allowlist,
    env: str,
    project: str,
    media: str,
    now: datetime,
    licence_of: LicenceOf | None = None,
) -> tuple[bytes, int, str]:
    """(body, files withheld, the reason for them); reused until the generation changes or a file
    withheld for its age comes of age."""
    key = (env, allowlist.generation, media)
    found = cached.rendered.get(key)
    if found is not None and (found[3] is None or now < found[3]):
        return found[:3]
    page = cached.page
    assert page is not None
    files: list[FileLink] = []
    by_range = 0
    conditioned: list[str] = []
    until: datetime | None = None
    releases: dict[str, tuple[Decision, timedelta | None]] = {}
    for link in page.files:
        parsed = parse_filename(link.filename)
        if parsed is None or parsed[0] != project:  # not a file of this project: never served
            by_range += 1
            continue
        verdict = releases.get(parsed[1])
        if verdict is None:
            licence = licence_of(link) if licence_of is not None else None
            verdict = releases[parsed[1]] = allowlist.judge_release(
                Ecosystem.PYPI, env, project, parsed[1], licence, now=now
            )
        decision, age = verdict
        if decision.allowed:
            if age is None:
                files.append(link)
                continue
            uploaded = upload_instant(link)
            if uploaded is not None and uploaded + age <= now:
                files.append(link)
                continue
            decision = judge_file(allowlist, env, project, parsed[1], link, licence_of, now)  # its reason
        if decision.condition is None:
            by_range += 1
        else:
            conditioned.append(decision.reason.removeprefix("withheld: "))
            if decision.until is not None:
                until = decision.until if until is None else min(until, decision.until)
    withheld = by_range + len(conditioned) + len(page.withheld)
    reasons = []
    if conditioned:
        reasons.append(f"{len(conditioned)} file(s) withheld by {env}'s conditions, e.g. {conditioned[-1]}")
    if by_range:
        reasons.append(
            f"{by_range} file(s) of {project} withheld: their versions are not allowed for {env} "
            f"(airlock allowlist explain pypi {project}==VERSION --env {env})"
        )
    if page.withheld:
        reasons.append(f"{len(page.withheld)} file(s) withheld: {page.withheld[0][1]}")
    reason = "; ".join(reasons)
    status = ProjectStatus()
    if page.status == "quarantined":
        status = ProjectStatus("quarantined", page.status_reason)
        reason = page.status_reason or reason
    elif not files and withheld:
        status = ProjectStatus("quarantined", f"nothing of {project} is allowed for {env}: {reason}")
    body = render_json(project, files, status) if media == JSON_V1 else render_html(project, files, status)
    for stale in [k for k in cached.rendered if k[1] != allowlist.generation]:  # bounded: envs x media types
        cached.rendered.pop(stale, None)
    cached.rendered[key] = (body, withheld, reason, until)
    return body, withheld, reason
