"""The Kafka security components (deploy/k8s/components): every workload and KEDA reach a secured Kafka alike.

An overlay like an operator's (prod plus one component) is rendered with kustomize; each workload's environment
and mounts are then turned into the settings the code reads, with the Secret's documented keys as files, and
must be accepted by rfkit's KafkaSettings; KEDA's triggers must authenticate from the same Secret.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rfkit.settings import KafkaSettings

from .conftest import K8S
from .manifests import Obj, closed, custom_resource, list_of

SECRET = "rf-kafka"
# What the operator puts in the Secret, per component (docs/operations.md).
SECRET_KEYS = {
    "kafka-sasl-ssl": {"username": "rf-service", "password": "s3cret\n", "ca.crt": "CA"},
    "kafka-mtls": {"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY"},
}
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
K8S_VERSIONS = ("1.31.0", "1.37.0")
TRIGGER_AUTHENTICATION_SCHEMA = custom_resource("keda.sh/v1alpha1", "TriggerAuthentication", closed({
    "secretTargetRef": list_of(closed({
        # The Kafka scaler's authentication parameters.
        "parameter": {"enum": ["sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"]},
        "name": {"type": "string"},
        "key": {"type": "string"},
    }, required=("parameter", "name", "key"))),
}, required=("secretTargetRef",)))


@pytest.fixture(scope="module")
def secured(kustomize: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Obj]]:
    """The prod overlay with each Kafka security component, rendered (from a copy: nothing is written here)."""
    copy = tmp_path_factory.mktemp("k8s-kafka") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("*.pem"))
    out = {}
    for component in SECRET_KEYS:
        overlay = copy / "overlays" / f"test-{component}"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["../prod"],
                    "components": [f"../../components/{component}"],
                }
            )
        )
        result = subprocess.run([*kustomize, str(overlay)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"kustomize build with {component} failed:\n{result.stderr}"
        out[component] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def _ours(objs: list[Obj]) -> list[Obj]:
    return [
        o
        for o in objs
        if o["kind"] in ("Deployment", "Job")
        and o["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "resolutionflow"
    ]


def _env(objs: list[Obj], container: Obj, secret: dict[str, str]) -> dict[str, str]:
    """The container's environment as Kubernetes assembles it, with `secret` as the Secret rf-kafka."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in _of_kind(objs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            env[var["name"]] = maps[source["configMapKeyRef"]["name"]][source["configMapKeyRef"]["key"]]
        elif source["secretKeyRef"]["name"] == SECRET:
            key = source["secretKeyRef"]["key"]
            assert key in secret, f"{container['name']} reads key {key!r} the Secret {SECRET} does not have"
            env[var["name"]] = secret[key]
        else:
            env[var["name"]] = "<another secret>"
    return env


def _secret_mounts(template: Obj, container: Obj) -> set[str]:
    """Where the container sees the Secret rf-kafka."""
    volumes = {
        v["name"] for v in template["spec"].get("volumes", []) if v.get("secret", {}).get("secretName") == SECRET
    }
    return {m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in volumes}


@pytest.mark.parametrize("component", list(SECRET_KEYS))
def test_rendered_objects_are_valid(secured: dict[str, list[Obj]], component: str) -> None:
    errors = []
    for obj in secured[component]:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "TriggerAuthentication":
            jsonschema.validate(obj, TRIGGER_AUTHENTICATION_SCHEMA)
            continue
        if obj["apiVersion"].startswith(("keda.sh/", "external-secrets.io/")):
            continue  # their schemas are checked by test_deploy_k8s on the same objects without the component
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{where} (k8s {version}): {exc.message} at {list(exc.absolute_path)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("component", list(SECRET_KEYS))
def test_every_workload_gets_settings_the_kit_accepts(
    secured: dict[str, list[Obj]], component: str, tmp_path: Path
) -> None:
    """Services, migrations and the topic Job: their RF_KAFKA_* settings validate, with files from the Secret."""
    objs = secured[component]
    secret = SECRET_KEYS[component]
    files = tmp_path / "secret"
    files.mkdir()
    for key, value in secret.items():
        (files / key).write_text(value)
    workloads = _ours(objs)
    assert {o["metadata"]["name"] for o in workloads} >= {
        "gateway", "sessions", "handoffs", "analytics", "kafka-topics", "sessions-migrate",
    }
    protocols = set()
    for obj in workloads:
        template = obj["spec"]["template"]
        for container in template["spec"]["containers"]:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            env = _env(objs, container, secret)
            mounts = _secret_mounts(template, container)
            kafka: dict[str, Any] = {}
            for name, value in env.items():
                if not name.startswith("RF_KAFKA_"):
                    continue
                if name.endswith("_FILE"):
                    path = PurePosixPath(value)
                    assert str(path.parent) in mounts, f"{where}: {name}={value} is not in the mounted Secret"
                    assert path.name in secret, f"{where}: {name} names {path.name!r}, not a key of the Secret"
                    kafka[name[3:].lower()] = files / path.name
                else:
                    kafka[name[3:].lower()] = value
            assert kafka.get("kafka_security_protocol", "PLAINTEXT") != "PLAINTEXT", where
            if obj["metadata"]["name"] == "kafka-topics":
                assert env["BOOTSTRAP"] == env["RF_KAFKA_BOOTSTRAP"]
            # Built from arguments alone: the test's own RF_ environment must not fill gaps.
            settings = KafkaSettings.model_validate(kafka)
            protocols.add(settings.kafka_security_protocol)
    assert len(protocols) == 1, "every workload speaks the same protocol"


@pytest.mark.parametrize("component", list(SECRET_KEYS))
def test_keda_reads_the_lag_with_the_services_credentials(secured: dict[str, list[Obj]], component: str) -> None:
    objs = secured[component]
    auths = {a["metadata"]["name"]: a for a in _of_kind(objs, "TriggerAuthentication")}
    common = next(o for o in _of_kind(objs, "ConfigMap") if o["metadata"]["name"].startswith("rf-common"))["data"]
    protocol = common["RF_KAFKA_SECURITY_PROTOCOL"]
    scaled = _of_kind(objs, "ScaledObject")
    assert scaled
    for so in scaled:
        (trigger,) = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        ref = trigger.get("authenticationRef", {}).get("name")
        assert ref in auths, f"ScaledObject {so['metadata']['name']}: no TriggerAuthentication {ref!r}"
        params = {p["parameter"]: p for p in auths[ref]["spec"]["secretTargetRef"]}
        assert {p["name"] for p in params.values()} == {SECRET}, "KEDA uses the services' Secret"
        assert {p["key"] for p in params.values()} <= set(SECRET_KEYS[component])
        meta = trigger["metadata"]
        assert (meta.get("tls") == "enable") == protocol.endswith("SSL")
        if protocol.startswith("SASL_"):
            assert meta["sasl"] == KEDA_SASL[common["RF_KAFKA_SASL_MECHANISM"]]
            assert {"username", "password"} <= set(params)
        else:
            assert meta.get("sasl", "none") == "none"
        if "RF_KAFKA_SSL_CERT_FILE" in common:
            assert {"cert", "key"} <= set(params), "KEDA presents the client certificate too"
        if "RF_KAFKA_SSL_CA_FILE" in common:
            assert "ca" in params, "KEDA trusts the same CA"


def test_plain_overlays_stay_plaintext(rendered: dict[str, list[Obj]]) -> None:
    """Without a component nothing refers to the Kafka Secret, and the settings default to PLAINTEXT."""
    for objs in rendered.values():
        assert not _of_kind(objs, "TriggerAuthentication")
        for obj in _ours(objs):
            template = obj["spec"]["template"]
            for container in template["spec"]["containers"]:
                assert not _secret_mounts(template, container)
                assert not any(
                    v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
                    for v in container.get("env", [])
                )
                env = _env(objs, container, {})
                assert env.get("RF_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT"
