"""AIRLOCK_REGISTRY_STORAGE: the registry caches of several replicas on one shared storage (here a
folder both mount, as a volume or an object store would be), so every replica serves the same bytes
for the same URL — even one that never fetched them from the upstream itself."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from mirror.children.registry import RegistryCache, read_registry_storage
from mirror.settings import ConfigurationError, load_settings
from testkit.docker import Registry


def _push_blob(registry: Registry, name: str, content: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    started = httpx.post(f"{registry.url}/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    put = httpx.put(f"{location}{separator}digest={digest}", content=content)
    assert put.status_code == 201, put.text
    return digest


def test_replicas_caches_on_shared_storage_serve_the_same_bytes(tmp_path):
    upstream = Registry(tmp_path / "upstream").start()
    shared = tmp_path / "shared-storage"
    (tmp_path / "storage.yaml").write_text(f"storage:\n  filesystem:\n    rootdirectory: {shared}\n")
    storage = read_registry_storage(tmp_path / "storage.yaml")
    caches = []
    try:
        content = b"a base image layer\n" * 1000
        digest = _push_blob(upstream, "ml/base", content)
        for replica in ("a", "b"):
            cache = RegistryCache(tmp_path / replica, "mcr", upstream.url, quiet=True, storage=storage)
            cache.start()
            caches.append(cache)
        first = httpx.get(f"{caches[0].url}/v2/ml/base/blobs/{digest}")
        assert first.status_code == 200 and first.content == content
        # The cache streams the layer to the client and commits it to storage right after.
        committed = (
            shared / "mcr" / "docker" / "registry" / "v2" / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
        )
        deadline = time.monotonic() + 30
        while not committed.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        upstream.stop()  # from now on only the shared storage has the layer
        second = httpx.get(f"{caches[1].url}/v2/ml/base/blobs/{digest}", follow_redirects=False)
        assert second.status_code == 200 and second.content == content
        assert not (tmp_path / "b" / "registry" / "mcr" / "storage").exists()  # nothing in B's data dir
    finally:
        for cache in caches:
            cache.stop()
        upstream.stop()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("storage: [s3]\n", "must be a mapping"),
        ("storage: {s3: {bucket: b}, gcs: {bucket: b}}\n", "exactly one storage driver"),
        ("storage: {ceph: {pool: p}}\n", "found: ceph"),
        ("storage: {filesystem: {}}\n", "needs `rootdirectory`"),
        ("storage: {s3: [bucket]}\n", "parameters must be a mapping"),
        ("storage: {s3: {bucket: b\n", "not YAML"),
    ],
)
def test_a_bad_storage_file_stops_the_service_naming_the_file_and_the_fix(tmp_path, monkeypatch, text, says):
    path = tmp_path / "storage.yaml"
    path.write_text(text)
    monkeypatch.setenv("AIRLOCK_REGISTRY_STORAGE", str(path))
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "AIRLOCK_REGISTRY_STORAGE" in message and str(path) in message and says in message


def test_a_missing_storage_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRLOCK_REGISTRY_STORAGE", str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigurationError, match="absent.yaml: cannot be read"):
        load_settings()
