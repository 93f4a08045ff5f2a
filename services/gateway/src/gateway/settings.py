"""Settings of the gateway service (environment variables with prefix RF_)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, IPvAnyNetwork, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from gateway.domain import IdentityPolicy
from gateway.security import public_pem_of
from rfkit.auth import generate_keypair
from rfkit.settings import ServiceSettings, peer_url

_ORIGIN = re.compile(r"https?://[^/\s:?#@]+(:[0-9]{1,5})?")

# OWASP's floor for argon2id (19 MiB, 2 passes); production must not go below it.
_MIN_PROD_ARGON2_MEMORY_KIB = 19_456
_MIN_PROD_ARGON2_TIME_COST = 2


class Settings(ServiceSettings):
    service_name: str = "gateway"
    port: int = 8000
    # Identity and forwarding only: no broker, no relay (rfkit.service.ServiceRuntime builds none).
    uses_kafka: ClassVar[bool] = False
    # The gateway neither produces nor consumes events (it opens no Kafka connection at all, gateway.main).
    create_topics: bool = False
    consume: bool = False

    # The signing key (Ed25519 PEM). Its public half is what the gateway verifies with; more public keys
    # (RF_JWT_PUBLIC_KEY) may be added while a signing key is rotated.
    jwt_private_key: SecretStr | None = None
    # Declared again (as in the kit) because the validator below completes it with the signing key's half.
    jwt_public_key: str | None = None
    jwt_private_key_file: Path | None = None
    access_token_ttl_s: int = Field(default=900, ge=30, le=3600)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)

    # Where the public API's routes live (required when RF_ENV=prod).
    sessions_url: str = peer_url("http://127.0.0.1:8001")
    handoffs_url: str = peer_url("http://127.0.0.1:8002")
    analytics_url: str = peer_url("http://127.0.0.1:8003")
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0)
    upstream_timeout_s: float = Field(default=5.0, gt=0)
    upstream_max_connections: int = Field(default=200, ge=1)
    # Event streams relayed at once (each holds a connection to its service; beyond it 503), and how long one may
    # stay silent before the gateway takes the service for gone (the live queue sends a comment every 15 s).
    max_open_streams: int = Field(default=10_000, ge=1)
    stream_idle_timeout_s: float = Field(default=60.0, gt=0)
    # Bodies are read into memory (identity) and forwarded whole: bounded well above the largest valid tree.
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    # Proxies whose X-Forwarded-For is believed (CIDRs, comma-separated: RF_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7).
    # A request whose direct peer is in one of them is from the right-most address of the header that is not;
    # every other request is from its peer, whatever it sends. Empty: no proxy is trusted (docs/operations.md).
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Browser origins allowed to call the API from their pages (CORS), exact `scheme://host[:port]`, comma- or
    # space-separated: RF_CORS_ORIGINS=https://console.example.com. Empty: no CORS headers at all, so browsers
    # allow only pages served from the gateway's own origin.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Login throttling (kept in the database, so every replica counts the same failures).
    login_failure_window_s: int = Field(default=900, ge=1)
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    # closed: POST /auth/register answers 403 (registration_closed); only admins add users (POST /users).
    registration: Literal["open", "closed"] = "open"
    # Registrations per client address: each one costs a password hash and creates an account.
    register_window_s: int = Field(default=3600, ge=1)
    register_max_per_address: int = Field(default=20, ge=1)
    # Password hashes computed at once (argon2 takes argon2_memory_kib each): bounds memory under a flood.
    password_hash_concurrency: int = Field(default=4, ge=1)

    # How long a token's "user still active, token not revoked" answer may be reused (per process).
    principal_cache_ttl_s: float = Field(default=1.0, ge=0, le=5)
    # How long a process trusts its last look-up of an API key (RF_API_KEY_RECHECK_S): a key revoked through
    # another gateway process stops working here within this. Bounded well below the margin by which a revoked
    # key's denial outlives its tokens (gateway.handlers.api_keys).
    api_key_recheck_s: float = Field(default=2.0, gt=0, le=30)

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)

    _signing_key_pem: str = PrivateAttr(default="")
    _ephemeral_key: bool = PrivateAttr(default=False)

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        # From the environment: one string, its items separated by commas and/or spaces.
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        # A browser sends the Origin as scheme://host[:port] and CORS compares it exactly: anything else
        # (a path, a trailing slash, "*") would never match or would allow every page on the web.
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path")
        return origins

    @model_validator(mode="after")
    def _secrets_outside_local(self) -> Settings:
        # Replaces the kit's check (same name): the gateway needs the private key; the public one follows from it.
        private = self._configured_private_key()
        if private is None:
            if self.env == "prod":
                raise ValueError("RF_JWT_PRIVATE_KEY or RF_JWT_PRIVATE_KEY_FILE is required when RF_ENV=prod")
            private, _ = generate_keypair()
            self._ephemeral_key = True
        own_public = public_pem_of(private)
        extra = self.jwt_public_key or (self.jwt_public_key_file.read_text() if self.jwt_public_key_file else "")
        if own_public.strip() in extra:
            extra = extra.replace(own_public.strip(), "")
        self.jwt_public_key = own_public + (extra.strip() + "\n" if extra.strip() else "")
        self._signing_key_pem = private
        if self.env == "prod" and (
            self.argon2_memory_kib < _MIN_PROD_ARGON2_MEMORY_KIB or self.argon2_time_cost < _MIN_PROD_ARGON2_TIME_COST
        ):
            raise ValueError("argon2 parameters below the OWASP minimum (19 MiB, 2 passes) are refused in prod")
        return self

    def _configured_private_key(self) -> str | None:
        if self.jwt_private_key is not None:
            return self.jwt_private_key.get_secret_value()
        if self.jwt_private_key_file is not None:
            return self.jwt_private_key_file.read_text()
        return None

    @property
    def signing_key_pem(self) -> str:
        return self._signing_key_pem

    @property
    def ephemeral_signing_key(self) -> bool:
        """True when no key was configured and a throwaway pair was generated (local and test only)."""
        return self._ephemeral_key

    def identity_policy(self) -> IdentityPolicy:
        """The identity rules these settings choose, as the use cases take them."""
        return IdentityPolicy(
            registration_open=self.registration == "open",
            register_max_per_address=self.register_max_per_address,
            register_window=timedelta(seconds=self.register_window_s),
            login_max_failures_per_email=self.login_max_failures_per_email,
            login_max_failures_per_address=self.login_max_failures_per_address,
            login_failure_window=timedelta(seconds=self.login_failure_window_s),
            refresh_token_ttl=timedelta(seconds=self.refresh_token_ttl_s),
        )

    def upstreams(self) -> dict[str, str]:
        return {
            "sessions": self.sessions_url.rstrip("/"),
            "handoffs": self.handoffs_url.rstrip("/"),
            "analytics": self.analytics_url.rstrip("/"),
        }
