"""`/v2/{env}/{upstream}/{repository}/…`: the base-image proxy docker pulls through.

A manifest asked for by tag is served only if the tag is allowed; Airlock then remembers which
digests that tag resolved to (the manifest, the manifests of a list, their layers and config),
because docker goes on by digest. A digest is served if it is pinned in the allowlist or was
reached from a tag that is allowed *now* — so an allowlist change or a revoked exception takes
effect on the next request. A tag list shows the allowed tags only. Pushes and every other route
are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from mirror.observability import DECISIONS, UPSTREAM_ERRORS
from mirror.parts import AllowlistDep, PartsDep, ServiceParts
from mirror.policy import Allowlist, Ecosystem, how_to_ask
from mirror.refusals import registry_refusal

router = APIRouter(tags=["containers"])
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_PASSED = ("content-type", "content-length", "docker-content-digest", "etag")
API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


@dataclass
class Reachability:
    """Which digests were reached from which tags or parent manifests, per environment and image."""

    from_tags: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    from_parents: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)

    def manifest_allowed(self, allowlist: Allowlist, env: str, image: str, digest: str, depth: int = 0) -> bool:
        if allowlist.decide(Ecosystem.CONTAINERS, env, image, digest).allowed:
            return True
        key = (env, image, digest)
        if any(allowlist.decide(Ecosystem.CONTAINERS, env, image, tag).allowed for tag in self.from_tags.get(key, ())):
            return True
        return depth < 3 and any(
            self.manifest_allowed(allowlist, env, image, parent, depth + 1) for parent in self.from_parents.get(key, ())
        )

    def remember(self, env: str, image: str, digest: str, tag: str | None = None, parent: str | None = None) -> None:
        if tag is not None:
            self.from_tags.setdefault((env, image, digest), set()).add(tag)
        if parent is not None:
            self.from_parents.setdefault((env, image, digest), set()).add(parent)

    def remember_children(self, env: str, image: str, digest: str, body: bytes) -> None:
        """Layers, config and (for a list or index) the platform manifests of a served manifest."""
        try:
            document = json.loads(body)
        except ValueError:
            return
        children = [m.get("digest") for m in document.get("manifests", [])]
        children += [layer.get("digest") for layer in document.get("layers", [])]
        children.append((document.get("config") or {}).get("digest"))
        for child in children:
            if isinstance(child, str) and _DIGEST.match(child):
                self.remember(env, image, child, parent=digest)


def _parse(
    parts: ServiceParts, allowlist: Allowlist, name: str
) -> tuple[str, str, str, str, Allowlist, Reachability] | Response:
    """`prod/mar/azureml/x` -> (env, upstream, repository, image, allowlist, reachability) or a refusal."""
    segments = name.split("/")
    if len(segments) < 3 or not all(_COMPONENT.match(p) for p in segments[2:]):
        return registry_refusal(
            404, "NAME_UNKNOWN", f"no such repository {name!r}: pull HOST/ENV/UPSTREAM/REPOSITORY:TAG", route="v2"
        )
    env, upstream, repository = segments[0], segments[1], "/".join(segments[2:])
    known = allowlist.environments(Ecosystem.CONTAINERS)
    if env not in known:
        return registry_refusal(
            404,
            "NAME_UNKNOWN",
            f"unknown environment {env!r}; known environments: {', '.join(known) or 'none'}",
            route="v2",
        )
    caches = parts.registry_caches
    policy_file = allowlist.policy.files.get(Ecosystem.CONTAINERS)
    configured = (policy_file.context or {}) if policy_file else {}
    if upstream not in configured:
        return registry_refusal(
            404,
            "NAME_UNKNOWN",
            f"unknown upstream {upstream!r}; configured in allowlists/containers.yaml: {', '.join(configured) or 'none'}",
            route="v2",
        )
    if upstream not in caches:
        # docker-registry will not start while its upstream is unreachable: say so, never "unknown".
        return registry_refusal(
            503,
            "UNAVAILABLE",
            f"Airlock: the registry cache for {upstream} is not running (it could not reach "
            f"{configured[upstream].url} when Airlock started); restart Airlock once the upstream is reachable",
            route="v2",
        )
    return env, upstream, repository, f"{upstream}/{repository}", allowlist, parts.registry_reach


@router.get("/v2/", include_in_schema=False)
async def version_check() -> Response:
    return Response("{}", media_type="application/json", headers=API_HEADER)


@router.api_route("/v2/{name:path}/manifests/{reference}", methods=["GET", "HEAD"], include_in_schema=False)
async def manifest(name: str, reference: str, request: Request, parts: PartsDep, current: AllowlistDep) -> Response:
    parsed = _parse(parts, current, name)
    if isinstance(parsed, Response):
        return parsed
    env, upstream, repository, image, allowlist, reach = parsed
    is_digest = bool(_DIGEST.match(reference))
    if not is_digest and not _TAG.match(reference):
        return registry_refusal(400, "TAG_INVALID", f"invalid tag {reference!r}", route="v2")
    if is_digest:
        allowed = reach.manifest_allowed(allowlist, env, image, reference)
        reason = allowlist.decide(Ecosystem.CONTAINERS, env, image, reference).reason
    else:
        decision = allowlist.decide(Ecosystem.CONTAINERS, env, image, reference)
        allowed, reason = decision.allowed, decision.reason
    DECISIONS.labels("containers", env, "allowed" if allowed else "blocked").inc()
    if not allowed:
        return registry_refusal(403, "DENIED", f"Airlock: {reason}", route="v2", subject=f"{image}:{reference}")
    accept = ", ".join(request.headers.getlist("accept"))
    response = await _forward(
        parts, request.method, upstream, f"/v2/{repository}/manifests/{reference}", {"Accept": accept} if accept else {}
    )
    if isinstance(response, Response):
        return response
    digest = response.headers.get("docker-content-digest")
    body = await response.aread() if request.method == "GET" else b""
    await response.aclose()
    if response.status_code == 404 and not await _upstream_answers(parts, allowlist, upstream):
        # The cache says "unknown" when it cannot ask the upstream: that must not read as "no such image".
        UPSTREAM_ERRORS.labels(f"registry-{upstream}").inc()
        return registry_refusal(
            503,
            "UNAVAILABLE",
            f"Airlock: the upstream registry {upstream} is unreachable and "
            f"{image}:{reference} is not cached; try again when it is back",
            route="v2",
        )
    if response.status_code == 200 and digest and _DIGEST.match(digest):
        if not is_digest:
            reach.remember(env, image, digest, tag=reference)
        if body:
            reach.remember_children(env, image, digest, body)
    headers = {k: response.headers[k] for k in _PASSED if k in response.headers}
    return Response(body, status_code=response.status_code, headers={**headers, **API_HEADER})


@router.api_route("/v2/{name:path}/blobs/{digest}", methods=["GET", "HEAD"], include_in_schema=False)
async def blob(name: str, digest: str, request: Request, parts: PartsDep, current: AllowlistDep) -> Response:
    parsed = _parse(parts, current, name)
    if isinstance(parsed, Response):
        return parsed
    env, upstream, repository, image, allowlist, reach = parsed
    if not _DIGEST.match(digest) or not reach.manifest_allowed(allowlist, env, image, digest):
        reason = (
            f"blob {digest} does not belong to a manifest allowed for {env}; "
            f"{how_to_ask(Ecosystem.CONTAINERS, env, image, None)}"
        )
        return registry_refusal(403, "DENIED", f"Airlock: {reason}", route="v2", subject=f"{image}@{digest}")
    response = await _forward(parts, request.method, upstream, f"/v2/{repository}/blobs/{digest}", {})
    if isinstance(response, Response):
        return response
    headers = {k: response.headers[k] for k in _PASSED if k in response.headers}
    if request.method == "HEAD" or response.status_code != 200:
        await response.aclose()
        return Response(status_code=response.status_code, headers={**headers, **API_HEADER})
    return StreamingResponse(
        response.aiter_raw(), headers={**headers, **API_HEADER}, background=BackgroundTask(response.aclose)
    )


@router.get("/v2/{name:path}/tags/list", include_in_schema=False)
async def tags(name: str, request: Request, parts: PartsDep, current: AllowlistDep) -> Response:
    """The upstream's tags that the environment allows now (what the gate enumerates allowed bases
    by, with `--server`); the rest are not listed, as `/pypi` pages list no blocked release."""
    parsed = _parse(parts, current, name)
    if isinstance(parsed, Response):
        return parsed
    env, upstream, repository, image, allowlist, _ = parsed
    listed = allowlist.decide_name(Ecosystem.CONTAINERS, env, image)
    if not listed.allowed:  # as for its manifests: the upstream is not asked, so nothing of it leaks
        return registry_refusal(403, "DENIED", f"Airlock: {listed.reason}", route="v2", subject=image)
    response = await _forward(parts, request.method, upstream, f"/v2/{repository}/tags/list", {})
    if isinstance(response, Response):
        return response
    body = await response.aread()
    await response.aclose()
    if response.status_code == 404 and await _upstream_answers(parts, allowlist, upstream):
        return registry_refusal(
            404, "NAME_UNKNOWN", f"Airlock: the upstream registry {upstream} has no repository {repository}", route="v2"
        )
    listed = _tag_list(body) if response.status_code == 200 else None
    if listed is None:
        UPSTREAM_ERRORS.labels(f"registry-{upstream}").inc()
        return registry_refusal(
            503,
            "UNAVAILABLE",
            f"Airlock: the upstream registry {upstream} did not list the tags of {image} "
            f"(HTTP {response.status_code}); try again when it answers",
            route="v2",
        )
    allowed = [tag for tag in listed if allowlist.decide(Ecosystem.CONTAINERS, env, image, tag).allowed]
    return Response(json.dumps({"name": name, "tags": allowed}), media_type="application/json", headers=API_HEADER)


@router.api_route("/v2/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def refuse_writes(path: str) -> Response:
    return registry_refusal(
        403,
        "DENIED",
        "Airlock: pushes and deletes are refused: Airlock only serves allowlisted base images",
        route="v2",
    )


def _tag_list(body: bytes) -> list[str] | None:
    """`{"name": …, "tags": [...]}` as the Registry API lists them (`tags` may be null); None if not."""
    try:
        listed = json.loads(body).get("tags") or []
    except (ValueError, AttributeError):
        return None
    return listed if isinstance(listed, list) and all(isinstance(tag, str) for tag in listed) else None


async def _upstream_answers(parts: ServiceParts, allowlist: Allowlist, upstream: str) -> bool:
    policy_file = allowlist.policy.files.get(Ecosystem.CONTAINERS)
    target = (policy_file.context or {}).get(upstream) if policy_file else None
    if target is None:
        return False
    try:
        probe = await parts.clients.registry.get(f"{target.url}/v2/", timeout=5.0)
    except httpx.HTTPError:
        return False
    return probe.status_code in (200, 401)


async def _forward(
    parts: ServiceParts, method: str, upstream: str, path: str, headers: dict[str, str]
) -> httpx.Response | Response:
    client = parts.clients.registry
    cache_url = parts.registry_caches[upstream]
    try:
        return await client.send(client.build_request(method, f"{cache_url}{path}", headers=headers), stream=True)
    except httpx.HTTPError as exc:
        UPSTREAM_ERRORS.labels(f"registry-{upstream}").inc()
        return registry_refusal(
            503,
            "UNAVAILABLE",
            f"Airlock: the registry cache for {upstream} did not answer ({exc.__class__.__name__})",
            route="v2",
        )
