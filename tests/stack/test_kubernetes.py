"""deploy/kubernetes/: the kustomize base, rendered here without kubectl (its resources, with
the labels and images the kustomization sets) and validated offline against a current
Kubernetes version's schemas with kubernetes-validate; and what the manifests say checked
against the programs they run (the worker's settings, the CLI's command line, the
receiver's health path, the image's user)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from activities.outbound_policy import HostAllowlist
from plans.variables import VariableAllowlist
from receiver.options import DEFAULT_TOKEN_ENV, TLS_CERT_ENV, TLS_KEY_ENV
from receiver.replies import HEALTH_PATH
from starter.arguments import parser
from worker.main import EPILOG

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = yaml.safe_load((BASE / "kustomization.yaml").read_text())
# The oldest Kubernetes the base is checked against, and the newest kubernetes-validate knows.
OLDEST = "1.30"
NEWEST = kubernetes_validate.latest_version()
NOBODY = 65534  # the user deploy/Dockerfile runs as (Debian's nobody)


def render() -> list[dict[str, Any]]:
    """What `kustomize build` makes of the base: the transformations it uses, no others."""
    assert set(KUSTOMIZATION) <= {"apiVersion", "kind", "labels", "resources", "images"}
    documents = []
    for name in KUSTOMIZATION["resources"]:
        documents.extend(d for d in yaml.safe_load_all((BASE / name).read_text()) if d)
    for labels in KUSTOMIZATION["labels"]:
        assert labels.get("includeSelectors") is False and not labels.get("includeTemplates")
        for document in documents:
            document["metadata"].setdefault("labels", {}).update(labels["pairs"])
    images = {image["name"]: image for image in KUSTOMIZATION["images"]}
    for container in containers(documents):
        image = images[container["image"]]  # every image is one the kustomization names
        container["image"] = image.get("newName", image["name"]) + (
            f":{image['newTag']}" if "newTag" in image else ""
        )
    return documents


def containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        container
        for document in documents
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
    ]


RENDERED = render()
BY_NAME = {(d["kind"], d["metadata"]["name"]): d for d in RENDERED}


def test_every_file_of_the_base_is_one_of_its_resources() -> None:
    files = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert files == set(KUSTOMIZATION["resources"])
    assert sorted(BY_NAME) == sorted(
        [
            ("ServiceAccount", "durable-rollouts"),
            ("ConfigMap", "rollout-worker"),
            ("Deployment", "rollout-worker"),
            ("Service", "rollout-worker-metrics"),
            ("PodDisruptionBudget", "rollout-worker"),
            ("Deployment", "rollout-alerts"),
            ("Service", "rollout-alerts"),
        ]
    )


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_every_resource_is_valid_for_kubernetes(version: str) -> None:
    assert tuple(int(part) for part in NEWEST.split(".")[:2]) >= (1, 37)
    for document in RENDERED:
        # strict: a field Kubernetes does not know is an error, not ignored
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_refuses_what_kubernetes_would() -> None:
    worker = copy.deepcopy(BY_NAME["Deployment", "rollout-worker"])
    worker["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, NEWEST, strict=True)
    worker = copy.deepcopy(BY_NAME["Deployment", "rollout-worker"])
    worker["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMap"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, NEWEST, strict=True)


def pod(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = BY_NAME["Deployment", name]["spec"]["template"]["spec"]
    return spec


def test_the_worker_replicas_read_their_settings_as_the_worker_does() -> None:
    deployment = BY_NAME["Deployment", "rollout-worker"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = pod("rollout-worker")["containers"]
    assert container["command"] == ["rollout-worker"]
    sources = {
        (kind, source[kind]["name"], source[kind].get("optional", False))
        for source in container["envFrom"]
        for kind in source
    }
    assert sources == {
        ("configMapRef", "rollout-worker", False),
        ("secretRef", "rollout-temporal", False),
        ("secretRef", "rollout-plan-secrets", True),
    }
    settings = BY_NAME["ConfigMap", "rollout-worker"]["data"]
    # Every setting is one the worker reads (its help lists them), none misspelt.
    assert all(name in EPILOG for name in settings), settings
    VariableAllowlist.parse(settings["ROLLOUT_PLAN_SECRETS"])  # the worker's own checks
    hosts = HostAllowlist.parse(settings["ROLLOUT_OUTBOUND_HOSTS"])
    assert hosts.allows_name("prometheus.monitoring.svc.cluster.local")
    # The metrics port: the one the worker serves, the container's and the Service's.
    port = int(settings["ROLLOUT_WORKER_METRICS"].rsplit(":", 1)[1])
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    service = BY_NAME["Service", "rollout-worker-metrics"]["spec"]
    assert service["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics"}]
    assert service["clusterIP"] == "None"  # one address a replica


def test_the_receiver_runs_the_clis_command_with_its_token_and_certificate() -> None:
    (container,) = pod("rollout-alerts")["containers"]
    program, *arguments = container["command"]
    assert program == "rollout"
    parsed = parser().parse_args(arguments)
    assert (parsed.cmd, parsed.listen) == ("alerts", ("0.0.0.0", 9095))
    env = {e["name"]: e for e in container["env"]}
    assert env[DEFAULT_TOKEN_ENV]["valueFrom"] == {
        "secretKeyRef": {"name": "rollout-alerts", "key": "token"}
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env[TLS_CERT_ENV]["value"] == f"{mounts['tls']}/tls.crt"
    assert env[TLS_KEY_ENV]["value"] == f"{mounts['tls']}/tls.key"
    volumes = {v["name"]: v for v in pod("rollout-alerts")["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "rollout-alerts-tls"
    assert container["envFrom"] == [{"secretRef": {"name": "rollout-temporal"}}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {
            "path": HEALTH_PATH,
            "port": "https",
            "scheme": "HTTPS",
        }
    assert container["ports"] == [{"name": "https", "containerPort": 9095}]
    service = BY_NAME["Service", "rollout-alerts"]["spec"]
    assert service["ports"] == [{"name": "https", "port": 9095, "targetPort": "https"}]


def test_services_and_the_budget_select_their_pods() -> None:
    for kind, name, deployment in [
        ("Service", "rollout-worker-metrics", "rollout-worker"),
        ("PodDisruptionBudget", "rollout-worker", "rollout-worker"),
        ("Service", "rollout-alerts", "rollout-alerts"),
    ]:
        spec = BY_NAME[kind, name]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        template = BY_NAME["Deployment", deployment]["spec"]["template"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert selector == BY_NAME["Deployment", deployment]["spec"]["selector"]["matchLabels"]


def test_both_run_as_the_images_user_without_privileges() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "\nUSER nobody\n" in dockerfile
    for name in ("rollout-worker", "rollout-alerts"):
        spec = pod(name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == NOBODY
        assert spec["automountServiceAccountToken"] is False
        (container,) = spec["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # The receiver writes nothing; the worker's folders are in the image (see the manifest).
    (receiver,) = pod("rollout-alerts")["containers"]
    assert receiver["securityContext"]["readOnlyRootFilesystem"] is True
    settings = BY_NAME["ConfigMap", "rollout-worker"]["data"]
    for folder in ("ROLLOUT_NOTIFY_DIR", "ROLLOUT_REPORT_DIR"):
        assert settings[folder].startswith("/var/lib/rollouts/")
    assert "chown nobody /var/lib/rollouts" in dockerfile
