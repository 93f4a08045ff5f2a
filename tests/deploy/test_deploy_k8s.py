"""The Kubernetes overlays render, validate against the Kubernetes schemas, and keep the operating rules."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rf_contracts import topics
from rfkit.auth import generate_keypair
from rfkit.settings import ServiceSettings

from .conftest import CONSUMER_GROUPS, K8S, OVERLAYS, SERVICE_PORTS, settings_classes, settings_env
from .manifests import (
    FROM_SECRET,
    Obj,
    closed,
    config_maps,
    container_env,
    custom_resource,
    list_of,
    named,
    of_kind,
    workloads,
)

# The first test builds kustomize on a fresh machine (a few minutes from the Go module proxy).
pytestmark = pytest.mark.timeout(900)

# Validated against the oldest Kubernetes we support and the newest the schemas know.
K8S_VERSIONS = ("1.31.0", "1.37.0")
NAMESPACES = {"dev": "resolutionflow-dev", "prod": "resolutionflow"}

# Custom resources are not in the Kubernetes schemas: these are the parts of their CRDs we use, closed
# (additionalProperties: false) so that a misspelt field fails here rather than being ignored by the operator.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
STRING: Obj = {"type": "string"}
SCALED_OBJECT_SCHEMA = custom_resource("keda.sh/v1alpha1", "ScaledObject", closed({
    "scaleTargetRef": closed({
        "apiVersion": STRING,
        "kind": STRING,
        "name": {"type": "string", "minLength": 1},
        "envSourceContainerName": STRING,
    }, required=("name",)),
    "minReplicaCount": {"type": "integer", "minimum": 0},
    "maxReplicaCount": {"type": "integer", "minimum": 1},
    "idleReplicaCount": {"type": "integer", "minimum": 0},
    "pollingInterval": {"type": "integer", "minimum": 1},
    "cooldownPeriod": {"type": "integer", "minimum": 0},
    "initialCooldownPeriod": {"type": "integer", "minimum": 0},
    "fallback": {"type": "object"},
    "advanced": closed({
        "restoreToOriginalReplicaCount": {"type": "boolean"},
        "horizontalPodAutoscalerConfig": closed({"name": STRING, "behavior": {"type": "object"}}),
        "scalingModifiers": {"type": "object"},
    }),
    "triggers": list_of(closed({
        "type": STRING,
        "name": STRING,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "metadata": _STR_MAP,
        "authenticationRef": {"type": "object", "required": ["name"]},
    }, required=("type", "metadata"))),
}, required=("scaleTargetRef", "triggers")))
KAFKA_TRIGGER_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["consumerGroup"],
    "oneOf": [{"required": ["bootstrapServers"]}, {"required": ["bootstrapServersFromEnv"]}],
    "properties": {
        key: {"type": "string"}
        for key in (
            "bootstrapServers",
            "bootstrapServersFromEnv",
            "consumerGroup",
            "consumerGroupFromEnv",
            "topic",
            "topicFromEnv",
            "lagThreshold",
            "activationLagThreshold",
            "offsetResetPolicy",
            "allowIdleConsumers",
            "scaleToZeroOnInvalidOffset",
            "excludePersistentLag",
            "limitToPartitionsWithLag",
            "ensureEvenDistributionOfPartitions",
            "partitionLimitation",
            "version",
            "sasl",
            "tls",
            "unsafeSsl",
        )
    },
}
EXTERNAL_SECRET_SCHEMA = custom_resource("external-secrets.io/v1", "ExternalSecret", closed({
    "refreshInterval": {"type": "string", "pattern": r"^\d+[smh]$"},
    "secretStoreRef": closed({
        "name": STRING,
        "kind": {"enum": ["SecretStore", "ClusterSecretStore"]},
    }, required=("name", "kind")),
    "target": closed({
        "name": STRING,
        "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
        "deletionPolicy": {"enum": ["Retain", "Delete", "Merge"]},
    }, required=("name",)),
    "data": list_of(closed({
        "secretKey": STRING,
        "remoteRef": closed({"key": STRING, "property": STRING, "version": STRING}, required=("key",)),
    }, required=("secretKey", "remoteRef"))),
}, required=("secretStoreRef", "target", "data")))
CUSTOM_SCHEMAS = {"ScaledObject": SCALED_OBJECT_SCHEMA, "ExternalSecret": EXTERNAL_SECRET_SCHEMA}


# ---- helpers ---------------------------------------------------------------------------------------------


def is_rf_workload(o: Obj) -> bool:
    """Ours (services, migrations, topics), as opposed to the dev overlay's Kafka and PostgreSQL."""
    labels = o["spec"]["template"]["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/part-of") == "resolutionflow"


def server(objs: list[Obj], service: str) -> Obj:
    return named(objs, "Deployment", service)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def image_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    assert name and tag and "/" not in tag, f"image without a tag: {image}"
    return name, tag


def by_overlay() -> Any:
    return pytest.mark.parametrize("overlay", OVERLAYS)


# ---- the tests -------------------------------------------------------------------------------------------


@by_overlay()
def test_every_object_validates_against_the_kubernetes_schemas(rendered: dict[str, list[Obj]], overlay: str) -> None:
    errors = []
    for obj in rendered[overlay]:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CUSTOM_SCHEMAS:
            try:
                jsonschema.validate(obj, CUSTOM_SCHEMAS[obj["kind"]])
            except jsonschema.ValidationError as exc:
                errors.append(f"{where}: {exc.message} at {list(exc.absolute_path)}")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{where} (k8s {version}): {exc.message} at {list(exc.absolute_path)}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{where}: {exc.message}")
    assert not errors, "\n".join(errors)


@by_overlay()
def test_kafka_triggers_are_well_formed(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for so in of_kind(rendered[overlay], "ScaledObject"):
        kafka = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        assert len(kafka) == 1, f"ScaledObject {so['metadata']['name']} needs one kafka trigger"
        jsonschema.validate(kafka[0]["metadata"], KAFKA_TRIGGER_METADATA)


@by_overlay()
def test_every_namespaced_object_is_in_the_overlay_namespace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for obj in rendered[overlay]:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACES[overlay]
            assert obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert obj["metadata"].get("namespace") == NAMESPACES[overlay], obj["metadata"]["name"]


@by_overlay()
def test_each_service_has_its_objects(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for service in SERVICE_PORTS:
        server(objs, service)
        named(objs, "Service", service)
        named(objs, "PodDisruptionBudget", service)
        named(objs, "Job", f"{service}-migrate")
        named(objs, "NetworkPolicy", service)
    named(objs, "HorizontalPodAutoscaler", "gateway")
    for service in CONSUMER_GROUPS:
        named(objs, "ScaledObject", service)
    named(objs, "Job", "kafka-topics")


@by_overlay()
def test_probes_use_healthz_and_readyz(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for service in SERVICE_PORTS:
        (container,) = server(rendered[overlay], service)["spec"]["template"]["spec"]["containers"]
        port_names = {p["name"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["port"] in port_names | {SERVICE_PORTS[service]}


@by_overlay()
def test_every_container_has_requests_and_limits(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for obj, template in workloads(rendered[overlay]):
        spec = template["spec"]
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(bound, {}), (
                        f"{obj['kind']}/{obj['metadata']['name']} {container['name']}: no {bound}.{resource}"
                    )


@by_overlay()
def test_pods_run_hardened(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for obj, template in workloads(rendered[overlay]):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = template["spec"]
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser", 1) != 0, where
        assert spec.get("automountServiceAccountToken") is False, where
        mounts_of_volume = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container.get("securityContext", {})
            seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("privileged", False), where
            if is_rf_workload(obj):
                assert sc.get("readOnlyRootFilesystem") is True, where
                tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp and "emptyDir" in mounts_of_volume[tmp[0]["name"]], f"{where}: no emptyDir on /tmp"


@by_overlay()
def test_selectors_match_their_pods(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    pods = [(o, t["metadata"].get("labels", {})) for o, t in workloads(objs)]
    for obj in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet"):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert matches(selector, obj["spec"]["template"]["metadata"]["labels"]), obj["metadata"]["name"]
    # A Service, PodDisruptionBudget or server NetworkPolicy selects the pods of exactly one Deployment or
    # StatefulSet: never the migration Job's pods, which carry the same app name.
    selecting = [(o, o["spec"]["selector"]) for o in of_kind(objs, "Service")]
    selecting += [(o, o["spec"]["selector"]["matchLabels"]) for o in of_kind(objs, "PodDisruptionBudget")]
    for obj, selector in selecting:
        chosen = [w for w, labels in pods if matches(selector, labels)]
        assert len(chosen) == 1, f"{obj['kind']}/{obj['metadata']['name']} selects {len(chosen)} workloads"
        assert chosen[0]["kind"] in {"Deployment", "StatefulSet"}
    for service in SERVICE_PORTS:
        deployment = server(objs, service)
        assert named(objs, "Service", service)["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@by_overlay()
def test_ports_agree_with_each_service_port_and_rf_port(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for service, port in SERVICE_PORTS.items():
        deployment = server(objs, service)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [port], service
        env = container_env(objs, container)
        assert env["RF_PORT"] == str(port), service
        assert env["RF_SERVICE_NAME"] == service
        svc = named(objs, "Service", service)
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(port, "http")]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


def _read_settings(
    settings_class: type[ServiceSettings], env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """What a container's settings class makes of its environment: Secrets and mounted key files stood in for."""
    private, public = generate_keypair()
    for name in [k for k in os.environ if k.startswith("RF_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if value == FROM_SECRET:
            value = "postgresql+asyncpg://stand-in:stand-in@db.invalid:5432/stand_in"
        elif name.endswith("_FILE"):
            key = tmp_path / name.lower()
            # A file from a mounted Secret: a signing key, a verification key, or some other secret.
            key.write_text(private if "PRIVATE_KEY" in name else public if "PUBLIC_KEY" in name else "stand-in")
            value = str(key)
        monkeypatch.setenv(name, value)
    return settings_class()


@by_overlay()
def test_each_container_is_a_valid_production_configuration(
    rendered: dict[str, list[Obj]], overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each server's environment passes its settings class's production checks (peer addresses, keys), every
    name in it is one the class reads, and what the Jobs take over is switched off in the servers."""
    objs = rendered[overlay]
    issuers = set()
    for service, settings_class in settings_classes().items():
        # The migration Job runs rfkit.migrate, which reads the kit's settings only.
        migrate = named(objs, "Job", f"{service}-migrate")
        for obj, reader in ((server(objs, service), settings_class), (migrate, ServiceSettings)):
            where = f"{overlay} {obj['kind']}/{obj['metadata']['name']}"
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            env = container_env(objs, container)
            unknown = set(env) - settings_env(service)
            assert not unknown, f"{where}: {sorted(unknown)} are read by no field of {service}'s settings"
            assert env.get("RF_DATABASE_URL") == FROM_SECRET, f"{where}: the database URL (a credential) is a Secret"
            mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
            read = {reader.env_name(field) for field in reader.model_fields}
            for name, value in env.items():
                # A file this program reads must be mounted (the migration never reads the signing key).
                if name.endswith("_FILE") and name in read:
                    assert str(Path(value).parent) in mounted, f"{where}: {name} is not on a mounted volume"
            settings = _read_settings(reader, env, tmp_path, monkeypatch)
            assert settings.env == "prod", f"{where}: keys and peer addresses must be mandatory"
            assert not settings.migrate_on_start, f"{where}: the migration Job migrates"
            assert not settings.create_topics, f"{where}: the topic Job creates the topics"
            assert settings.service_name == service
            issuers.add((settings.jwt_issuer, settings.jwt_audience))
            if obj["kind"] == "Deployment":
                assert ipaddress.ip_address(settings.host).is_unspecified, f"{where}: must listen beyond loopback"
    assert len(issuers) == 1, f"{overlay}: the services would refuse the gateway's tokens: {issuers}"


@by_overlay()
def test_one_image_tag_for_every_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    tags = set()
    for _, template in workloads(objs):
        for container in template["spec"]["containers"]:
            name, tag = image_tag(container["image"])
            if name.startswith("resolutionflow/"):
                tags.add(tag)
                assert tag != "latest"
    assert len(tags) == 1, f"{overlay} mixes image tags {tags}"
    for service in SERVICE_PORTS:
        for obj in (server(objs, service), named(objs, "Job", f"{service}-migrate")):
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            assert image_tag(container["image"])[0] == f"resolutionflow/{service}"
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    assert {i["name"] for i in kustomization["images"]} >= {f"resolutionflow/{s}" for s in SERVICE_PORTS}


@by_overlay()
def test_migration_jobs_run_rfkit_migrate_with_the_service_image(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for service in SERVICE_PORTS:
        job = named(objs, "Job", f"{service}-migrate")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "rfkit.migrate", service]
        (served,) = server(objs, service)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == served["image"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


@by_overlay()
def test_topic_job_creates_every_contract_topic_and_its_dlq(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    job = named(objs, "Job", "kafka-topics")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = container_env(objs, container)
    assert tuple(env["TOPICS"].split()) == topics.ALL_TOPICS
    assert env["PARTITIONS"] == str(topics.PARTITIONS)
    assert env["RETENTION_MS"] == str(topics.RETENTION_MS)
    assert env["DLQ_RETENTION_MS"] == str(topics.DLQ_RETENTION_MS)
    assert env["BOOTSTRAP"] == config_maps(objs)[_common_name(objs)]["RF_KAFKA_BOOTSTRAP"]
    # What the script does with these: tests/deploy/test_topic_script.py runs it.
    assert image_tag(container["image"]) == ("apache/kafka", _pom_kafka_version())


def _common_name(objs: list[Obj]) -> str:
    (name,) = [n for n in config_maps(objs) if n.startswith("rf-common")]
    return name


def _pom_kafka_version() -> str:
    pom = (K8S.parent / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match
    return match.group(1)


@by_overlay()
def test_consumers_scale_on_lag_up_to_the_partition_count(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objs, "HorizontalPodAutoscaler")}
    for so in of_kind(objs, "ScaledObject"):
        spec = so["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        deployment = server(objs, target)
        assert target not in hpa_targets, f"{target} has both an HPA and a ScaledObject"
        assert "replicas" not in deployment["spec"], f"{target}: replicas would fight the autoscaler"
        assert 1 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"] <= topics.PARTITIONS
        (kafka,) = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
        assert kafka["consumerGroup"] == CONSUMER_GROUPS[target]
        assert kafka.get("allowIdleConsumers", "false") == "false"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = container_env(objs, container)
        assert env[kafka["bootstrapServersFromEnv"]], "KEDA reads the bootstrap address from the Deployment"
        assert "." in env[kafka["bootstrapServersFromEnv"]], "KEDA resolves it from its own namespace: qualify it"
    assert {so["spec"]["scaleTargetRef"]["name"] for so in of_kind(objs, "ScaledObject")} == set(CONSUMER_GROUPS)


@by_overlay()
def test_gateway_scales_on_cpu(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in server(objs, "gateway")["spec"]


def _referenced_secrets(objs: list[Obj]) -> set[str]:
    names = set()
    for _, template in workloads(objs):
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in spec["containers"] + spec.get("initContainers", []):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
    return names


def test_prod_has_no_literal_secrets(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    assert of_kind(objs, "Secret") == [], "prod must not carry Secret objects: they come from the secret store"
    kustomization = yaml.safe_load((K8S / "overlays" / "prod" / "kustomization.yaml").read_text())
    assert "secretGenerator" not in kustomization
    provided = {es["spec"]["target"]["name"] for es in of_kind(objs, "ExternalSecret")}
    assert _referenced_secrets(objs) <= provided, f"not provided: {_referenced_secrets(objs) - provided}"
    # No credentials hidden in settings either.
    for data in config_maps(objs).values():
        for value in data.values():
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), "credentials in a ConfigMap"
            assert "PRIVATE KEY" not in value


@by_overlay()
def test_only_the_gateway_holds_the_signing_key(rendered: dict[str, list[Obj]], overlay: str) -> None:
    holders = {
        obj["metadata"]["name"]
        for obj, template in workloads(rendered[overlay])
        for volume in template["spec"].get("volumes", [])
        if volume.get("secret", {}).get("secretName", "").startswith("rf-jwt-private")
    }
    assert holders == {"gateway"}


def test_dev_generates_every_secret_it_uses(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["dev"]
    secrets = {s["metadata"]["name"] for s in of_kind(objs, "Secret")}
    assert _referenced_secrets(objs) <= secrets
