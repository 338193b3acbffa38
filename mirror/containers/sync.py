"""`airlock sync containers`: pre-pull the allowlisted base images through Airlock's own
`/v2/` routes, so the registry caches hold them before anyone asks (and the filter is exercised).

Tag globs are expanded with the upstream registry's tag list (metadata only); every manifest,
platform manifest, layer and config is then fetched through the running service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from mirror.policy import Allowlist, Ecosystem
from mirror.policy.containers import allowed_references
from mirror.progress import Progress

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)


@dataclass
class ImageSyncReport:
    pulled: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    blobs: int = 0


def sync_images(
    allowlist: Allowlist, service_url: str, client: httpx.Client, environments: list[str] | None = None
) -> ImageSyncReport:
    report = ImageSyncReport()
    policy_file = allowlist.policy.files.get(Ecosystem.CONTAINERS)
    if policy_file is None:
        report.problems.append("no containers allowlist (allowlists/containers.yaml): nothing to sync")
        return report
    references = []
    for env in environments or list(policy_file.environments):
        references += [
            (env, ref.image, ref.reference)
            for ref in allowed_references(
                allowlist, env, lambda upstream, repo: _upstream_tags(client, upstream.url, repo, report)
            )
        ]
    progress = Progress(len(references), 0, "containers sync", unit="images")
    for env, image, reference in references:
        base = f"{service_url}/v2/{env}/{image}"
        try:
            _pull(client, base, reference, report)
            report.pulled.append(f"{env}/{image}{'@' if reference.startswith('sha256:') else ':'}{reference}")
        except _PullError as exc:
            report.problems.append(f"{env}/{image}:{reference}: {exc}")
        progress.advance(files=1)
    progress.close()
    return report


class _PullError(Exception):
    pass


def _upstream_tags(client: httpx.Client, upstream_url: str, repository: str, report: ImageSyncReport) -> list[str]:
    try:
        response = client.get(f"{upstream_url}/v2/{repository}/tags/list")
        if response.status_code == 200:
            return list(response.json().get("tags") or [])
        report.problems.append(f"{upstream_url}/v2/{repository}/tags/list: HTTP {response.status_code}")
    except (httpx.HTTPError, ValueError) as exc:
        report.problems.append(f"{upstream_url}/v2/{repository}/tags/list: {exc.__class__.__name__}")
    return []


def _pull(client: httpx.Client, base: str, reference: str, report: ImageSyncReport) -> None:
    response = client.get(f"{base}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES})
    if response.status_code != 200:
        raise _PullError(_message(response))
    document = json.loads(response.content)
    for child in document.get("manifests", []):
        _pull(client, base, child["digest"], report)
    for blob in [*document.get("layers", []), document.get("config")]:
        if not blob:
            continue
        with client.stream("GET", f"{base}/blobs/{blob['digest']}") as stream:
            if stream.status_code != 200:
                raise _PullError(_message(stream))
            for _ in stream.iter_bytes(1 << 20):
                pass
        report.blobs += 1


def _message(response: httpx.Response) -> str:
    try:
        response.read()
        return response.json()["errors"][0]["message"]
    except (ValueError, KeyError, IndexError):
        return f"HTTP {response.status_code}"
