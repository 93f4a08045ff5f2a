"""One description of how to reach Kafka (address, TLS, SASL), turned into what each client library takes."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

if TYPE_CHECKING:
    from rfkit.settings import KafkaSettings


class KafkaAccessError(RuntimeError):
    """Kafka answered but refused this client (TLS trust, SASL credentials): retrying cannot help."""


def _secret(path: Path) -> str:
    # A mounted Secret or `echo` adds a trailing newline that is not part of the password.
    return path.read_text().rstrip("\r\n")


def _tls_refusal(exc: BaseException) -> ssl.SSLError | None:
    """The TLS alert behind a closed connection, if any (TLS 1.3 reports a refused client certificate late)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class KafkaConnection:
    """Bootstrap address plus security; a bare address string stands for PLAINTEXT."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    # Where the trust and credentials came from, for error messages (never the password itself).
    origin: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, kafka: str | KafkaConnection) -> KafkaConnection:
        return kafka if isinstance(kafka, KafkaConnection) else cls(kafka)

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> KafkaConnection:
        protocol = settings.kafka_security_protocol
        context = None
        origin: dict[str, str] = {}
        if protocol in ("SSL", "SASL_SSL"):
            key_file_password = settings.kafka_ssl_key_password_file
            key_password = _secret(key_file_password) if key_file_password else None
            context = create_ssl_context(
                cafile=settings.kafka_ssl_ca_file,
                certfile=settings.kafka_ssl_cert_file,
                keyfile=settings.kafka_ssl_key_file,
                password=key_password,
            )
            origin["trust"] = (
                f"RF_KAFKA_SSL_CA_FILE={settings.kafka_ssl_ca_file}"
                if settings.kafka_ssl_ca_file
                else "the system trust store (RF_KAFKA_SSL_CA_FILE unset)"
            )
            if settings.kafka_ssl_cert_file:
                origin["client certificate"] = f"RF_KAFKA_SSL_CERT_FILE={settings.kafka_ssl_cert_file}"
        password = None
        password_file = settings.kafka_sasl_password_file
        if protocol.startswith("SASL_") and password_file:  # the settings' validation made sure it is set
            password = _secret(password_file)
            if not password:
                raise ValueError(f"RF_KAFKA_SASL_PASSWORD_FILE={settings.kafka_sasl_password_file} is empty")
            origin["sasl"] = (
                f"user {settings.kafka_sasl_username!r} with {settings.kafka_sasl_mechanism} "
                f"(password from RF_KAFKA_SASL_PASSWORD_FILE={settings.kafka_sasl_password_file})"
            )
        return cls(
            settings.kafka_bootstrap,
            protocol,
            context,
            settings.kafka_sasl_mechanism if password else None,
            settings.kafka_sasl_username if password else None,
            password,
            origin,
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kwargs

    def faststream_security(self) -> BaseSecurity | None:
        """The `security` argument of FastStream's KafkaBroker (None for PLAINTEXT)."""
        use_ssl = self.security_protocol.endswith("SSL")
        if self.sasl_mechanism and self.sasl_username and self.sasl_password is not None:
            kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
            return kind[self.sasl_mechanism](
                self.sasl_username, self.sasl_password, ssl_context=self.ssl_context, use_ssl=use_ssl
            )
        if use_ssl:
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        return None

    def addresses(self) -> list[tuple[str, int]]:
        result = []
        for address in self.bootstrap.split(","):
            host, _, port = address.strip().rpartition(":")
            result.append((host.strip("[]"), int(port)))
        return result

    async def check_access(self, timeout_s: float = 10.0) -> None:
        """Connect to a bootstrap broker and authenticate, so that a refusal is reported as what it is.

        The client libraries log a refused handshake and then fail with "Unable to bootstrap", or retry it
        forever in the background. Raises KafkaAccessError for what retrying cannot fix (untrusted or
        mismatched certificate, rejected credentials); a broker that cannot be reached raises
        KafkaConnectionError, which a caller may retry.
        """
        unreachable: list[str] = []
        for host, port in self.addresses():
            try:
                conn = await asyncio.wait_for(
                    create_conn(
                        host,
                        port,
                        client_id="rfkit-access-check",
                        request_timeout_ms=int(timeout_s * 1000),
                        ssl_context=self.ssl_context,
                        security_protocol=self.security_protocol,
                        sasl_mechanism=self.sasl_mechanism,
                        sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password,
                    ),
                    timeout_s,
                )
            except ssl.SSLCertVerificationError as exc:
                raise KafkaAccessError(
                    f"Kafka at {host}:{port}: TLS certificate not trusted ({exc.verify_message}); "
                    f"trust comes from {self.origin.get('trust', 'the system trust store')}"
                ) from exc
            except ssl.SSLError as exc:
                certificate = self.origin.get("client certificate", "no client certificate")
                raise KafkaAccessError(
                    f"Kafka at {host}:{port}: TLS handshake failed ({exc.reason or exc}); does the listener speak "
                    f"RF_KAFKA_SECURITY_PROTOCOL={self.security_protocol}, and accept {certificate}?"
                ) from exc
            except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError) as exc:
                raise KafkaAccessError(
                    f"Kafka at {host}:{port}: SASL authentication as {self.origin.get('sasl', self.sasl_username)} "
                    f"refused: {exc}"
                ) from exc
            except (OSError, TimeoutError, KafkaConnectionError) as exc:
                refusal = _tls_refusal(exc)
                if refusal is not None:
                    certificate = self.origin.get("client certificate", "no client certificate")
                    raise KafkaAccessError(
                        f"Kafka at {host}:{port}: the broker ended the TLS session ({refusal.reason or refusal}); "
                        f"it requires a client certificate it trusts, and this client presents {certificate}"
                    ) from exc
                unreachable.append(f"{host}:{port} ({type(exc).__name__}: {exc})")
                continue
            conn.close()
            return
        # A listener of another security protocol also just closes the connection: the protocol is named.
        raise KafkaConnectionError(
            f"Kafka unreachable with RF_KAFKA_SECURITY_PROTOCOL={self.security_protocol}: {'; '.join(unreachable)}"
        )
