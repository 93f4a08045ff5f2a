"""Settings every service shares, read from `RF_` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The json_schema_extra key that marks a field as the address of another service this one calls, and the one
# that says the calls are made in the background (the service starts and serves without the peer).
_PEER = "rf_peer"
_BACKGROUND = "rf_peer_background"


def peer_url(default: str | None, *, background: bool = False) -> Any:
    """A field holding the base URL of another service this one calls over HTTP.

    Its default (a loopback address, or None: the call is not made) serves local runs and tests only: with
    RF_ENV=prod it must be given.
    The deployment tests find these fields (ServiceSettings.peer_url_fields) to learn which service calls
    which, and check that compose and the Kubernetes manifests give each one and let the call through.
    `background`: the peer is followed in the background, so the service need not wait for it to start (and
    must not: the gateway, followed by every service for its token denials, waits for them).
    """
    return Field(default=default, json_schema_extra={_PEER: True, _BACKGROUND: background})


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

    # Whether the service talks to Kafka at all (its runtime opens a broker, an outbox relay, a health probe).
    # The gateway does not: a Kafka outage must not touch login or the forwarded API.
    uses_kafka: ClassVar[bool] = True

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
    # Startup waits this long for Kafka, then serves the API and keeps connecting in the background.
    kafka_startup_wait_s: float = Field(default=30.0, ge=0)
    # How often each service probes Kafka for the rf_kafka_up metric and the outage log lines.
    kafka_probe_interval_s: float = Field(default=5.0, gt=0)

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

    @model_validator(mode="after")
    def _peers_given_outside_local(self) -> Self:
        # A missing address would silently mean 127.0.0.1 inside a container: refuse to start instead.
        if self.env == "prod":
            missing = [self.env_name(f) for f in self.peer_url_fields() if f not in self.model_fields_set]
            if missing:
                verb = "is" if len(missing) == 1 else "are"
                raise ValueError(f"{', '.join(missing)} {verb} required when RF_ENV=prod")
        for name in self.peer_url_fields():
            value = getattr(self, name)
            if value is None and self.env != "prod":
                continue
            url = urlsplit(value or "")
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"{self.env_name(name)} must be an http(s) URL with a host, not {value!r}")
        return self

    @classmethod
    def peer_url_fields(cls) -> tuple[str, ...]:
        """The fields declared with peer_url: each names a service this one calls."""
        return tuple(
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(_PEER)
        )

    @classmethod
    def background_peer_fields(cls) -> tuple[str, ...]:
        """The peer_url fields whose calls are made in the background (the service starts without the peer)."""
        return tuple(
            name for name in cls.peer_url_fields()
            if cls.model_fields[name].json_schema_extra.get(_BACKGROUND)  # type: ignore[union-attr]
        )

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from (RF_ + its name, upper case)."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

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


class DomainServiceSettings(ServiceSettings):
    """Settings of a service behind the gateway (sessions, handoffs, analytics): where the gateway's token-denial
    feed is (rfkit.denials)."""

    # The gateway's internal address (e.g. http://gateway:8000). Unset outside prod: revocations then reach this
    # service only through the gateway's own check, not for direct calls.
    gateway_url: str | None = peer_url(None, background=True)
    denials_poll_interval_s: float = Field(default=1.0, gt=0, le=30)
