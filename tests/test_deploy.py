"""deploy/: the Kubernetes manifests against the pinned Kubernetes JSON schemas (offline, no cluster),
and what a platform team relies on in them; the HAProxy configuration checked by haproxy itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mirror.children.registry import read_registry_storage
from mirror.settings import Settings
from tests.conftest import REPO_ROOT

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"


def _manifests() -> list[dict]:
    return [doc for path in sorted(KUBERNETES.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in _manifests()}


@pytest.mark.parametrize("manifest", _manifests(), ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}")
def test_every_manifest_is_valid_kubernetes(manifest):
    # strict: a misspelt field (`readinesProbe`) is an error, not silently ignored as kubectl would.
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_is_caught():
    deployment = _by_kind()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**deployment}
    broken_container = {**container, "readinesProbe": container["readinessProbe"]}
    broken["spec"] = {
        **deployment["spec"],
        "template": {
            **deployment["spec"]["template"],
            "spec": {**deployment["spec"]["template"]["spec"], "containers": [broken_container]},
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_replicas_probes_secret_and_disruption_budget():
    kinds = _by_kind()
    deployment = kinds["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["replicas"] >= 2
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    env = {item["name"]: item for item in container["env"]}
    assert env["AIRLOCK_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "airlock-database"
    assert "value" not in env["AIRLOCK_DATABASE_URL"]  # the URL (and password) never in the manifest
    password_volume = next(v for v in pod["volumes"] if v["name"] == "database-password")
    assert password_volume["secret"]["secretName"] == "airlock-database"
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    selector = kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["template"]["metadata"]["labels"].items()
    assert kinds["Service"]["spec"]["selector"].items() <= deployment["template"]["metadata"]["labels"].items()
    assert {"allowlists", "registry-storage", "data"} <= {v["name"] for v in pod["volumes"]}


def test_every_setting_named_exists_and_the_image_user_matches():
    pod = _by_kind()["Deployment"]["spec"]["template"]["spec"]
    known = {f"AIRLOCK_{name.upper()}" for name in Settings.model_fields}
    for container in pod["containers"] + pod["initContainers"]:
        named = {item["name"] for item in container["env"]}
        assert named <= known, named - known
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"--uid {pod['securityContext']['runAsUser']}" in dockerfile


def test_the_registry_storage_configmap_is_a_valid_storage_file(tmp_path):
    config_map = next(doc for doc in _manifests() if doc["metadata"]["name"] == "airlock-registry-storage")
    path = tmp_path / "storage.yaml"
    path.write_text(config_map["data"]["storage.yaml"])
    assert "s3" in read_registry_storage(path)


def test_the_shipped_haproxy_configuration_is_valid():
    env = {
        **os.environ,
        "AIRLOCK_BALANCER_BIND": "127.0.0.1:18000",
        "AIRLOCK_BALANCER_STATS_BIND": "127.0.0.1:18404",
        "AIRLOCK_REPLICA_1": "127.0.0.1:18001",
        "AIRLOCK_REPLICA_2": "127.0.0.1:18002",
    }
    config = Path(REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg")
    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
