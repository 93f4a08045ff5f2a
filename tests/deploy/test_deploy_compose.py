"""compose.yaml: infrastructure, one-shot topic/migration services before the servers, settings, ports."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rf_contracts import topics
from rf_devstack import compose as compose_test
from rfkit.auth import generate_keypair
from rfkit.settings import ServiceSettings

from .conftest import REPO, SERVICE_PORTS, settings_classes, settings_env

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
    """A service's environment as compose gives it when no override is set (`${NAME:-default}` is the default)."""
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def read_settings(
    service: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """What a service's settings class makes of its compose environment (key files, made at start, stood in for)."""
    private, public = generate_keypair()
    for name in [k for k in os.environ if k.startswith("RF_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.endswith("_FILE"):
            key = tmp_path / name.lower()
            # A file from a mounted Secret: a signing key, a verification key, or some other secret.
            key.write_text(private if "PRIVATE_KEY" in name else public if "PUBLIC_KEY" in name else "stand-in")
            value = str(key)
        monkeypatch.setenv(name, value)
    return settings_classes()[service]()


def advertised(kafka: dict[str, Any]) -> dict[str, str]:
    """host:port -> security protocol, for each listener the broker advertises to clients."""
    env = env_of(kafka)
    protocols = dict(pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    bound = {}
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, _, address = listener.partition("://")
        bound[name] = address.rpartition(":")[2]
    out = {}
    for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name, _, address = listener.partition("://")
        assert name in bound, f"advertised listener {name} is not bound"
        assert address.rpartition(":")[2] == bound[name], f"{name} is advertised on another port than it binds"
        assert name not in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","), "the controller listener is internal"
        out[address] = protocols[name]
    return out


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


def test_every_peer_address_names_the_compose_service_that_listens_there(services: dict[str, Any]) -> None:
    """Each peer URL a service's settings declare is given, names a compose service running the service that
    listens on that port, and that service is healthy before its caller starts (unless the caller follows it
    in the background: then it must not wait, since the gateway waits for the services that follow it)."""
    for caller, settings in settings_classes().items():
        env = env_of(services[caller])
        for field in settings.peer_url_fields():
            variable = settings.env_name(field)
            assert variable in env, f"{caller} is not given {variable}: it would call 127.0.0.1 in its container"
            url = urlsplit(env[variable])
            callee = url.hostname
            assert callee in services, f"{caller}: {variable}={env[variable]} names no compose service"
            assert callee in settings_classes() and callee != caller, f"{variable} reaches {callee}"
            assert env_of(services[callee])["RF_PORT"] == str(url.port), f"{callee} does not listen on {url.port}"
            if field in settings.background_peer_fields():
                assert callee not in services[caller]["depends_on"], f"{caller} waits for {callee} it follows"
            else:
                assert services[caller]["depends_on"].get(callee) == {"condition": "service_healthy"}, (
                    f"{caller} starts before {callee}, which it calls"
                )


def test_only_the_gateway_is_published_and_on_loopback(services: dict[str, Any]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    (port,) = services["gateway"]["ports"]
    # host address : host port (RF_GATEWAY_PORT, default 8000) : container port
    host_ip, rest = str(port).split(":", 1)
    host_port, _, container_port = rest.rpartition(":")
    assert ipaddress.ip_address(host_ip).is_loopback, "published on loopback only"
    assert re.fullmatch(r"\$\{RF_GATEWAY_PORT:-\d+\}|\d+", host_port), "the host port is RF_GATEWAY_PORT"
    assert container_port == env_of(services["gateway"])["RF_PORT"], "published where the gateway listens"


def test_servers_get_settings_their_code_reads_and_that_agree(
    services: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every name given is a field of the service's settings; Kafka and PostgreSQL addresses reach the compose
    broker and database; the services accept the gateway's tokens; the one-shot services do what they say."""
    kafka = advertised(services["kafka"])
    databases = _init_databases(services)
    (database_host,) = [name for name, service in services.items() if _init_script(service)]
    issuers = set()
    for name in SERVICE_PORTS:
        for service_name in (name, f"{name}-migrate"):
            env = env_of(services[service_name])
            unknown = set(env) - settings_env(name)
            assert not unknown, f"{service_name}: {sorted(unknown)} are read by no field of {name}'s settings"
            settings = read_settings(name, env, tmp_path, monkeypatch)
            assert settings.service_name == name
            assert not settings.migrate_on_start, f"{service_name}: {name}-migrate migrates"
            assert not settings.create_topics, f"{service_name}: kafka-topics creates the topics"
            for address in settings.kafka_bootstrap.split(","):
                assert address in kafka, f"{service_name}: the broker does not advertise {address}"
            db = urlsplit(settings.database_url)
            assert db.hostname == database_host, f"{service_name}: not the compose PostgreSQL"
            assert db.port == 5432 and "PGPORT" not in env_of(services[database_host]), "PostgreSQL's own port"
            assert databases.get(db.path.lstrip("/")) == db.username, f"{service_name}: its database and owner"
            issuers.add((settings.jwt_issuer, settings.jwt_audience))
    assert len(issuers) == 1, f"the services would refuse the gateway's tokens: {issuers}"


def test_images_are_built_from_the_one_dockerfile(services: dict[str, Any]) -> None:
    images = set()
    for name in SERVICE_PORTS:
        server = services[name]
        images.add(server["image"])
        build = server["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert build["args"]["SERVICE"] == name
        assert str(build["args"]["PORT"]) == env_of(server)["RF_PORT"], f"{name}: the image exposes another port"
        migrate = services[f"{name}-migrate"]
        assert migrate["image"] == server["image"] and migrate["build"] == build, f"{name}: one image per service"
    assert len(images) == len(SERVICE_PORTS), "each service its own image"


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
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "KRaft, no ZooKeeper"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "a mistyped topic must not be created"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID is a base64 UUID (22 chars)"
    # Clients reach the broker where it says it is: the topic service too.
    assert env_of(services["kafka-topics"])["BOOTSTRAP"] in advertised(services["kafka"])


def _init_script(service: dict[str, Any]) -> Path | None:
    """The SQL a PostgreSQL container runs on its first start, if this service is one."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and "docker-entrypoint-initdb.d" in volume:
            return REPO / volume.split(":")[0]
    return None


def _init_databases(services: dict[str, Any]) -> dict[str, str]:
    """database -> owner, as the PostgreSQL init script creates them."""
    script = _init_script(services["postgres"])
    assert script
    sql = script.read_text()
    return dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))


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
    # What the script does with these: tests/deploy/test_topic_script.py runs it.


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
