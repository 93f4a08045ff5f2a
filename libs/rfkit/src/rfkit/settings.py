"""Settings every service shares, read from `RF_` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from rfkit.kafka import KafkaConnection

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka: bootstrap address and, for a secured cluster, TLS and SASL (docs/operations.md).

    The SASL password and a client key's password are read from files (a mounted Secret), never from a
    variable with a default. Combinations are checked here, so a misconfiguration fails at startup naming
    the variable instead of as a connection that silently never authenticates.
    """

    model_config = SettingsConfigDict(env_prefix="RF_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = None
    # Without a CA file the system's trust store verifies the broker (as for a public managed Kafka).
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password_file: Path | None = None

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> KafkaSettings:
        protocol = self.kafka_security_protocol
        sasl = {
            "RF_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "RF_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "RF_KAFKA_SASL_PASSWORD_FILE": self.kafka_sasl_password_file,
        }
        tls = {
            "RF_KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file,
            "RF_KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file,
            "RF_KAFKA_SSL_KEY_FILE": self.kafka_ssl_key_file,
            "RF_KAFKA_SSL_KEY_PASSWORD_FILE": self.kafka_ssl_key_password_file,
        }
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if not value]
            if missing:
                raise ValueError(f"RF_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        else:
            stray = [name for name, value in sasl.items() if value]
            if stray:
                raise ValueError(f"{', '.join(stray)} set but RF_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL")
        if protocol.endswith("SSL"):
            if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
                raise ValueError("RF_KAFKA_SSL_CERT_FILE and RF_KAFKA_SSL_KEY_FILE go together (client certificate)")
            if self.kafka_ssl_key_password_file and not self.kafka_ssl_key_file:
                raise ValueError("RF_KAFKA_SSL_KEY_PASSWORD_FILE set without RF_KAFKA_SSL_KEY_FILE")
        else:
            stray = [name for name, value in tls.items() if value]
            if stray:
                raise ValueError(f"{', '.join(stray)} set but RF_KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS")
        for name, path in {**sasl, **tls}.items():
            if isinstance(path, Path) and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        return self

    def kafka(self) -> KafkaConnection:
        """What every Kafka client of the process is given (address, TLS context, SASL credentials)."""
        from rfkit.kafka import KafkaConnection

        return KafkaConnection.from_settings(self)


class ServiceSettings(KafkaSettings):
    """Base settings; each service subclasses it and sets its own defaults (name, port)."""

    model_config = SettingsConfigDict(env_prefix="RF_", extra="ignore")

    env: Literal["local", "test", "prod"] = "local"
    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    db_pool_size: int = 10
    migrate_on_start: bool = True

    # Prefix for topic and consumer-group names, so that parallel environments (tests) share a broker.
    topic_prefix: str = ""
    create_topics: bool = True
    consume: bool = True

    jwt_public_key: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "resolutionflow-gateway"
    jwt_audience: str = "resolutionflow"

    # Python's cyclic GC: the first generation's allocation threshold (CPython's default, 700, suits request
    # handling: small, frequent collections). A service that consumes many events raises it (analytics).
    gc_gen0_threshold: int = Field(default=700, ge=100)

    outbox_poll_interval_s: float = Field(default=0.1, gt=0)
    outbox_batch_size: int = 500

    @model_validator(mode="after")
    def _secrets_outside_local(self) -> ServiceSettings:
        if self.env == "prod" and not (self.jwt_public_key or self.jwt_public_key_file):
            raise ValueError("RF_JWT_PUBLIC_KEY or RF_JWT_PUBLIC_KEY_FILE is required when RF_ENV=prod")
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def public_key_pem(self) -> str | None:
        if self.jwt_public_key:
            return self.jwt_public_key
        if self.jwt_public_key_file:
            return self.jwt_public_key_file.read_text()
        return None
