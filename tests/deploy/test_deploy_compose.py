"""compose.yaml: infrastructure, one-shot topic/migration services before the servers, settings, ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rf_contracts import topics
from rf_devstack import compose as compose_test

from .conftest import CONSUMER_GROUPS, REPO, SERVICE_PORTS, allowed_env

COMPOSE = REPO / "compose.yaml"
ONE_SHOTS = {"kafka-topics", "jwt-keys", *(f"{s}-migrate" for s in SERVICE_PORTS)}
INFRA = {"kafka", "postgres"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def test_every_service_is_there(services: dict[str, Any]) -> None:
    assert set(services) == INFRA | ONE_SHOTS | set(SERVICE_PORTS)


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if name in ONE_SHOTS:
            # A one-shot never listens: the image's server HEALTHCHECK must not mark it unhealthy.
            assert check == {"disable": True}, name
            assert service.get("restart") == "no", name
        else:
            assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
            assert service.get("restart") == "unless-stopped", name


def test_servers_check_readyz_on_their_port(services: dict[str, Any]) -> None:
    for name, port in SERVICE_PORTS.items():
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in test and "RF_PORT" in test, name
        assert env_of(services[name])["RF_PORT"] == str(port)


def test_depends_on_always_names_a_condition(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec["condition"] in CONDITIONS, f"{name} -> {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"


def test_migrations_and_topics_come_before_each_server(services: dict[str, Any]) -> None:
    for name in SERVICE_PORTS:
        depends = services[name]["depends_on"]
        assert depends[f"{name}-migrate"] == {"condition": "service_completed_successfully"}
        assert depends["kafka-topics"] == {"condition": "service_completed_successfully"}
        assert depends["kafka"] == {"condition": "service_healthy"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        migrate = services[f"{name}-migrate"]
        assert migrate["command"] == ["python", "-m", "rfkit.migrate", name]
        assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert migrate["image"] == services[name]["image"]
        assert env_of(migrate)["RF_DATABASE_URL"] == env_of(services[name])["RF_DATABASE_URL"]
    for consumer in CONSUMER_GROUPS:
        assert services["gateway"]["depends_on"][consumer] == {"condition": "service_healthy"}


def test_only_the_gateway_is_published_and_on_loopback(services: dict[str, Any]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    (port,) = services["gateway"]["ports"]
    # host address : host port (RF_GATEWAY_PORT, SPEC section 6) : container port
    assert re.fullmatch(r"127\.0\.0\.1:(\$\{RF_GATEWAY_PORT:-8000\}|8000):8000", str(port)), port


def test_servers_get_only_contract_settings(services: dict[str, Any]) -> None:
    for name in SERVICE_PORTS:
        for service_name in (name, f"{name}-migrate"):
            env = env_of(services[service_name])
            rf_names = {k for k in env if k.startswith("RF_")}
            assert set(env) == rf_names, f"{service_name}: non-RF settings {set(env) - rf_names}"
            assert rf_names <= allowed_env(name), f"{service_name}: unknown {rf_names - allowed_env(name)}"
            assert env["RF_SERVICE_NAME"] == name
            assert env["RF_MIGRATE_ON_START"] == "false"
            assert env["RF_CREATE_TOPICS"] == "false"
            assert env["RF_KAFKA_BOOTSTRAP"] == "kafka:9092"
            assert env["RF_JWT_ISSUER"] == "resolutionflow-gateway"
            assert env["RF_JWT_AUDIENCE"] == "resolutionflow"
            assert re.fullmatch(
                rf"postgresql\+asyncpg://[^:]+:[^@]+@postgres:5432/rf_{name}", env["RF_DATABASE_URL"]
            ), service_name
    gateway = env_of(services["gateway"])
    for consumer, port in SERVICE_PORTS.items():
        if consumer != "gateway":
            assert gateway[f"RF_{consumer.upper()}_URL"] == f"http://{consumer}:{port}"
    assert gateway["RF_JWT_PRIVATE_KEY_FILE"]


def test_images_are_built_from_the_one_dockerfile(services: dict[str, Any]) -> None:
    for name, port in SERVICE_PORTS.items():
        for service_name in (name, f"{name}-migrate"):
            service = services[service_name]
            assert service["image"] == f"resolutionflow/{name}:${{RF_IMAGE_TAG:-local}}"
            build = service["build"]
            assert (REPO / build["context"] / build["dockerfile"]).is_file()
            assert build["args"] == {"SERVICE": name, "PORT": port}


def image_default(image: str) -> str:
    """The image compose uses when the override variable is not set (`${RF_X_IMAGE:-default}`)."""
    match = re.fullmatch(r"\$\{RF_[A-Z_]+_IMAGE:-([^}]+)\}", image)
    return match.group(1) if match else image


def test_kafka_is_the_pinned_version_in_kraft_mode(services: dict[str, Any]) -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match
    # Overridable for machines without a registry (make compose-test), by a stand-in of the same version.
    assert image_default(services["kafka"]["image"]) == f"apache/kafka:{match.group(1)}"
    assert compose_test.KAFKA_IMAGE.endswith(f":{match.group(1)}")
    assert services["kafka-topics"]["image"] == services["kafka"]["image"]
    env = env_of(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID is a base64 UUID (22 chars)"


def test_postgres_has_one_database_per_service(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert image_default(postgres["image"]) == "postgres:17"
    (init,) = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    sql = (REPO / init.split(":")[0]).read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", sql))
    assert databases == {f"rf_{s}" for s in SERVICE_PORTS}


def test_topic_service_creates_every_contract_topic_and_its_dlq(services: dict[str, Any]) -> None:
    service = services["kafka-topics"]
    env = env_of(service)
    assert tuple(env["TOPICS"].split()) == topics.ALL_TOPICS
    assert env["PARTITIONS"] == str(topics.PARTITIONS)
    assert env["RETENTION_MS"] == str(topics.RETENTION_MS)
    assert env["DLQ_RETENTION_MS"] == str(topics.DLQ_RETENTION_MS)
    assert env["BOOTSTRAP"] == "kafka:9092"
    (mount,) = service["volumes"]
    source, target, _ = mount.split(":")
    assert service["entrypoint"] == ["/bin/sh", target]
    script = (REPO / source).read_text()
    assert f'"$topic{topics.DLQ_SUFFIX}" "$DLQ_RETENTION_MS"' in script


def test_bind_mounts_exist() -> None:
    for line in COMPOSE.read_text().splitlines():
        match = re.match(r"\s*- (\./[^:]+):", line)
        if match:
            assert Path(REPO / match.group(1)).exists(), match.group(1)


def test_only_the_gateway_sees_the_signing_key(services: dict[str, Any]) -> None:
    def volumes(service: dict[str, Any]) -> set[str]:
        return {v["source"] if isinstance(v, dict) else v.split(":")[0] for v in service.get("volumes", [])}

    holders = {name for name, service in services.items() if "jwt-keys" in volumes(service)}
    assert holders == {"gateway", "jwt-keys"}
    for name in SERVICE_PORTS:
        if name != "gateway":
            assert "jwt-public" in volumes(services[name])
