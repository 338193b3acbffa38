"""The few Docker Registry HTTP API v2 calls the gate makes: read a base image's layers, list tags,
delete a failed image's manifest by digest.

Allowed base images are read from the upstream registry `containers.yaml` names or, with
`--server`, through Airlock's `/v2/{env}/{upstream}/…` proxy (`BaseImageReader`): a CI runner in a
locked-down network often reaches Airlock and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from gate.interface import GateError

if TYPE_CHECKING:
    import httpx

    from gate.policy_source import ServerClient
    from mirror.policy.containers import RegistryUpstream

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def registry_base_url(host: str) -> str:
    """Docker talks plain HTTP to loopback registries and HTTPS to the rest; so does the gate."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    plain = name in ("localhost", "[::1]") or name.startswith("127.")
    return f"{'http' if plain else 'https'}://{host}"


class RegistryClient:
    """httpx is imported on first use: a scan that touches no registry does not pay for it."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=60, follow_redirects=True)
        return self._client

    def _get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        import httpx

        try:
            response = self.client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise GateError(f"registry unreachable: GET {url} failed ({exc.__class__.__name__})") from None
        if response.status_code != 200:
            raise GateError(f"registry answered HTTP {response.status_code} to GET {url}{_reason(response)}")
        return response

    def tags(self, base_url: str, repository: str, headers: dict[str, str] | None = None) -> list[str]:
        return list(self._get(f"{base_url}/v2/{repository}/tags/list", headers).json().get("tags") or [])

    def diff_ids(
        self, base_url: str, repository: str, reference: str, headers: dict[str, str] | None = None
    ) -> tuple[str, tuple[str, ...]]:
        """(manifest digest, layer diff IDs) of an image; an index resolves to its linux/amd64 entry."""
        response = self._get(
            f"{base_url}/v2/{repository}/manifests/{reference}", {**(headers or {}), "Accept": MANIFEST_ACCEPT}
        )
        digest = response.headers.get("Docker-Content-Digest", reference)
        manifest = response.json()
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            platform = next(
                (
                    m
                    for m in manifest.get("manifests", [])
                    if m.get("platform", {}).get("os") == "linux"
                    and m.get("platform", {}).get("architecture") == "amd64"
                ),
                None,
            )
            if platform is None:
                raise GateError(f"{base_url}/v2/{repository}:{reference} has no linux/amd64 image")
            return digest, self.diff_ids(base_url, repository, platform["digest"], headers)[1]
        config_digest = (manifest.get("config") or {}).get("digest")
        if not config_digest:
            raise GateError(f"{base_url}/v2/{repository}:{reference}: manifest without a config")
        config = json.loads(self._get(f"{base_url}/v2/{repository}/blobs/{config_digest}", headers).content)
        return digest, tuple(config.get("rootfs", {}).get("diff_ids") or ())

    def digest(self, host: str, repository: str, reference: str) -> str | None:
        """The manifest digest a tag (or digest) names in a registry, or None when it cannot be read."""
        import httpx

        if reference.startswith("sha256:"):
            return reference
        try:
            head = self.client.head(
                f"{registry_base_url(host)}/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
            )
        except httpx.HTTPError:
            return None
        return head.headers.get("Docker-Content-Digest") if head.status_code == 200 else None

    def delete_manifest(self, host: str, repository: str, tag_or_digest: str) -> str:
        """Delete by digest (registries refuse deletes by tag); returns the digest deleted."""
        import httpx

        digest = self.digest(host, repository, tag_or_digest)
        if digest is None:
            raise GateError(
                f"cannot delete {host}/{repository}:{tag_or_digest} from the registry: its manifest digest cannot be read"
            )
        try:
            response = self.client.delete(f"{registry_base_url(host)}/v2/{repository}/manifests/{digest}")
        except httpx.HTTPError as exc:
            raise GateError(f"cannot delete {host}/{repository} from the registry ({exc.__class__.__name__})") from None
        if response.status_code not in (200, 202, 404):
            raise GateError(
                f"registry refused to delete {host}/{repository}@{digest}: HTTP {response.status_code} "
                "(enable deletes: storage.delete.enabled in the registry's config)"
            )
        return digest


class BaseImageReader:
    """Reads allowed base images for one environment: from each upstream registry, or through the
    Airlock `server` (with its token), which serves and lists only what that environment allows."""

    def __init__(self, registry: RegistryClient, env: str, server: ServerClient | None = None) -> None:
        self.registry, self.env = registry, env
        self.server_url = server.url if server else None
        self.headers = server.headers if server else {}

    def _where(self, upstream: RegistryUpstream, repository: str) -> tuple[str, str]:
        if self.server_url is None:
            return upstream.url, repository
        return self.server_url, f"{self.env}/{upstream.name}/{repository}"

    def tags(self, upstream: RegistryUpstream, repository: str) -> list[str]:
        with self._explained():
            return self.registry.tags(*self._where(upstream, repository), self.headers)

    def diff_ids(self, upstream: RegistryUpstream, repository: str, reference: str) -> tuple[str, tuple[str, ...]]:
        with self._explained():
            return self.registry.diff_ids(*self._where(upstream, repository), reference, self.headers)

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """Through Airlock, say so: its refusal (an upstream or environment its own containers.yaml
        does not have) is about the server's allowlists, not the registry."""
        try:
            yield
        except GateError as exc:
            if self.server_url is None:
                raise
            raise GateError(f"reading the allowed base images through Airlock (--server): {exc}") from None


def _reason(response: httpx.Response) -> str:
    """Airlock's own words for a refusal (its `X-Airlock-Reason`), when the registry is Airlock."""
    reason = response.headers.get("x-airlock-reason")
    return f": {reason}" if reason else ""
