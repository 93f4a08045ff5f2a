"""Settings every service shares, read from `RF_` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
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

    kafka_bootstrap: str = "127.0.0.1:9092"
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
