"""A service reaches a Kafka that requires TLS and SASL (SCRAM) or client certificates, and a refusal fails clearly.

The broker is this module's own (started once), with certificates made here: a CA, the broker's certificate
for 127.0.0.1/localhost, a client certificate, and a second CA that signed nothing the broker presents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rf_contracts import Event, topics
from rf_devstack._paths import default_pom
from rf_devstack.kafka import LocalKafka, resolve_classpath
from rf_devstack.prereqs import find_maven
from rf_testsupport import free_port, new_database, step_event, unique_prefix, wait_until
from rfkit.db import UnitOfWork
from rfkit.kafka import KafkaAccessError
from rfkit.service import ServiceRuntime
from rfkit.settings import KafkaSettings, ServiceSettings

USER, PASSWORD = "rf-service", "correct horse battery staple"
TOPIC_SCRIPT = Path(__file__).resolve().parents[3] / "deploy/k8s/base/kafka-topics/create-topics.sh"


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    broker_keystore: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: what both Kafka's PEM keystore and Python's ssl module read.
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def _certificate(cn: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.CertificateBuilder:
    """What every certificate here has: its name and issuer, its key, a day of validity, whether it is a CA."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _certificate(cn, _name(cn), key, ca=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    cn: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _certificate(cn, ca_cert.subject, key, ca=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    ca_key, ca_cert = _ca("rf test CA")
    _, other_cert = _ca("rf test CA nobody trusts")
    broker_key, broker_cert = _leaf("kafka-broker", ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("rf-service", ca_key, ca_cert, server=False)
    files = {
        "ca.pem": _pem(ca_cert),
        "other-ca.pem": _pem(other_cert),
        # Kafka's PEM keystore: the private key followed by the certificate chain, in one file.
        "broker.pem": _key_pem(broker_key) + _pem(broker_cert) + _pem(ca_cert),
        "client.pem": _pem(client_cert),
        "client.key": _key_pem(client_key),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return Pki(
        directory / "ca.pem", directory / "other-ca.pem", directory / "broker.pem",
        directory / "client.pem", directory / "client.key",
    )


@dataclass(frozen=True)
class SecuredKafka:
    broker: LocalKafka
    pki: Pki
    sasl_ssl: str
    mtls: str
    secrets: Path


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory):
    """One broker for the module: PLAINTEXT (its own readiness), SASL_SSL with SCRAM users, and mutual TLS."""
    run_dir = Path(tmp_path_factory.mktemp("kafka-secured"))
    certs = run_dir / "certs"
    certs.mkdir()
    pki = make_pki(certs)
    sasl_port, mtls_port = free_port(), free_port()
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    kafka = LocalKafka(
        run_dir,
        free_port(),
        free_port(),
        fresh=True,
        extra_listeners={"SECURE": ("SASL_SSL", sasl_port), "MTLS": ("SSL", mtls_port)},
        extra_properties={
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca),
            "listener.name.mtls.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.secure.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.secure.scram-sha-256.sasl.jaas.config": scram_login,
            "listener.name.secure.scram-sha-512.sasl.jaas.config": scram_login,
        },
        # SCRAM users exist from the start: KRaft writes them into the metadata log when formatting.
        format_args=[
            "--add-scram", f"SCRAM-SHA-256=[name={USER},password={PASSWORD}]",
            "--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
        ],
    )
    kafka.start()
    secrets = run_dir / "secrets"
    secrets.mkdir()
    (secrets / "password").write_text(PASSWORD + "\n")  # as `echo` or a Secret with a newline writes it
    (secrets / "wrong-password").write_text("not the password\n")
    yield SecuredKafka(kafka, pki, f"127.0.0.1:{sasl_port}", f"localhost:{mtls_port}", secrets)
    kafka.stop()


def _settings(database_url: str, **kafka: Any) -> ServiceSettings:
    return ServiceSettings(
        env="test",
        service_name=f"kafkasec-{uuid.uuid4().hex[:6]}",
        database_url=database_url,
        topic_prefix=unique_prefix(),
        **kafka,
    )


def _sasl(secured: SecuredKafka, mechanism: str = "SCRAM-SHA-256", **over: Any) -> dict[str, Any]:
    return {
        "kafka_bootstrap": secured.sasl_ssl,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": USER,
        "kafka_sasl_password_file": secured.secrets / "password",
        "kafka_ssl_ca_file": secured.pki.ca,
        **over,
    }


async def _refused_startup(settings: ServiceSettings) -> str:
    """Start a service with these settings, expecting the broker to refuse it; the message it fails with."""
    runtime = ServiceRuntime(settings, package="sessions")
    try:
        with pytest.raises(KafkaAccessError) as refused:
            await runtime.start()
    finally:
        await runtime.stop()
    assert not runtime.started
    return str(refused.value)


@pytest.mark.parametrize("access", ["SCRAM-SHA-256", "SCRAM-SHA-512", "mTLS"])
async def test_a_service_publishes_and_consumes_through_secured_kafka(secured_kafka, make_database, access) -> None:
    if access == "mTLS":
        kafka: dict[str, Any] = {
            "kafka_bootstrap": secured_kafka.mtls,
            "kafka_security_protocol": "SSL",
            "kafka_ssl_ca_file": secured_kafka.pki.ca,
            "kafka_ssl_cert_file": secured_kafka.pki.client_cert,
            "kafka_ssl_key_file": secured_kafka.pki.client_key,
        }
    else:
        kafka = _sasl(secured_kafka, access)
    settings = _settings(await new_database(make_database), **kafka)
    # A real service's runtime (its migrations give the outbox and dedup tables), plus one consumer of ours.
    runtime = ServiceRuntime(settings, package="sessions")
    received: list[Event] = []

    async def record(uow: UnitOfWork, events: list[Event]) -> None:
        received.extend(events)

    runtime.consumer(name="kafkasec-probe", topics=[topics.STEP_CREATED], group="kafkasec-probe", handler=record)
    await runtime.start()  # creates the topics, joins the group and starts the outbox relay, all over TLS
    try:
        event = step_event()
        async with runtime.db.unit_of_work() as uow:
            await uow.publish(event)

        async def delivered() -> bool:
            return any(e.event_id == event.event_id for e in received)

        await wait_until(delivered, timeout_s=60)
    finally:
        await runtime.stop()
    assert [e.event_id for e in received] == [event.event_id]


async def test_a_wrong_password_fails_startup_naming_the_cause(secured_kafka, make_database) -> None:
    settings = _settings(
        await new_database(make_database),
        **_sasl(secured_kafka, kafka_sasl_password_file=secured_kafka.secrets / "wrong-password"),
    )
    message = await _refused_startup(settings)
    assert "SASL authentication" in message and repr(USER) in message and "SCRAM-SHA-256" in message
    assert "wrong-password" in message  # names the file the password came from, never the password
    assert "not the password" not in message


async def test_an_untrusted_broker_certificate_fails_startup_naming_the_cause(secured_kafka, make_database) -> None:
    settings = _settings(
        await new_database(make_database), **_sasl(secured_kafka, kafka_ssl_ca_file=secured_kafka.pki.other_ca)
    )
    message = await _refused_startup(settings)
    assert "not trusted" in message and str(secured_kafka.pki.other_ca) in message


async def test_a_missing_client_certificate_fails_startup_naming_the_cause(secured_kafka, make_database) -> None:
    settings = _settings(
        await new_database(make_database),
        kafka_bootstrap=secured_kafka.mtls,
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=secured_kafka.pki.ca,
    )
    message = await _refused_startup(settings)
    assert "requires a client certificate" in message
    assert "presents no client certificate" in message


def test_settings_refuse_incomplete_security(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("x")
    with pytest.raises(ValueError, match="RF_KAFKA_SASL_PASSWORD_FILE"):
        ServiceSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u")
    with pytest.raises(ValueError, match="no such file"):
        ServiceSettings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
            kafka_sasl_password_file=tmp_path / "missing",
        )
    with pytest.raises(ValueError, match="go together"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cert_file=password)
    with pytest.raises(ValueError, match="uses no TLS"):
        ServiceSettings(kafka_ssl_ca_file=password)
    with pytest.raises(ValueError, match="uses no SASL"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_sasl_username="u")
    assert ServiceSettings().kafka().faststream_security() is None


def _kafka_bin(directory: Path) -> Path:
    """kafka-topics.sh and kafka-configs.sh as in the Kafka image, over the broker's jars plus kafka-tools."""
    pom = default_pom()
    version = re.search(r"<kafka\.version>([^<]+)<", pom.read_text())
    assert version, pom
    tools = Path.home() / f".m2/repository/org/apache/kafka/kafka-tools/{version[1]}/kafka-tools-{version[1]}.jar"
    if not tools.is_file():  # cached after the first run, like the broker's jars
        mvn = find_maven(os.environ)
        assert mvn, "Maven is needed to fetch kafka-tools"
        subprocess.run(
            [mvn, "-B", "-q", "dependency:get", f"-Dartifact=org.apache.kafka:kafka-tools:{version[1]}"],
            check=True, capture_output=True, timeout=900,
        )
    classpath = f"{resolve_classpath(pom)}:{tools}"
    directory.mkdir()
    for script, main in (("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
                         ("kafka-configs.sh", "kafka.admin.ConfigCommand")):
        # Short-lived tools: the quick compiler tier and the simplest collector start fastest.
        java = "java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
        (directory / script).write_text(f'#!/bin/sh\nexec {java} -cp "{classpath}" {main} "$@"\n')
        (directory / script).chmod(0o755)
    return directory


async def test_the_topic_job_script_creates_topics_over_sasl_ssl(secured_kafka, tmp_path: Path) -> None:
    """deploy/k8s/base/kafka-topics/create-topics.sh with the RF_KAFKA_* settings of the kafka-sasl-ssl component."""
    topic = f"{unique_prefix()}{topics.STEP_CREATED}"
    env = {
        "PATH": os.environ["PATH"],
        "KAFKA_BIN": str(await asyncio.to_thread(_kafka_bin, tmp_path / "bin")),
        "TMPDIR": str(tmp_path),
        "BOOTSTRAP": secured_kafka.sasl_ssl,
        "TOPICS": topic,
        "PARTITIONS": "2",
        "RETENTION_MS": "-1",
        "DLQ_RETENTION_MS": "86400000",
        "RF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RF_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RF_KAFKA_SASL_USERNAME": USER,
        "RF_KAFKA_SASL_PASSWORD_FILE": str(secured_kafka.secrets / "password"),
        "RF_KAFKA_SSL_CA_FILE": str(secured_kafka.pki.ca),
    }
    result = await asyncio.to_thread(
        subprocess.run, ["sh", str(TOPIC_SCRIPT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all topics ready" in result.stdout
    assert (tmp_path / "rf-kafka-client.properties").stat().st_mode & 0o077 == 0, "the password file is private"

    # Checked through the kit, with the very settings the script was given.
    settings = {k[3:].lower(): v for k, v in env.items() if k.startswith("RF_KAFKA_")}
    kafka = KafkaSettings.model_validate({**settings, "kafka_bootstrap": secured_kafka.sasl_ssl}).kafka()
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        described = await admin.describe_topics([topic, f"{topic}.dlq"])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{topic}.dlq")])
    finally:
        await admin.close()
    assert [len(d["partitions"]) for d in described] == [2, 2]
    dlq_config = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert dlq_config["retention.ms"] == "86400000"
