"""Settings of the handoffs service (environment variables with prefix RF_)."""

from pydantic import Field

from rfkit.settings import DomainServiceSettings, peer_url


class Settings(DomainServiceSettings):
    service_name: str = "handoffs"
    port: int = 8002
    # Escalation checks the session there synchronously (RF_SESSIONS_URL; required when RF_ENV=prod).
    sessions_url: str = peer_url("http://127.0.0.1:8001")
    # Short: an escalation should fail fast with 503 rather than hang when sessions is down.
    sessions_timeout_s: float = Field(default=2.0, gt=0)
    # How often the stale-claim detector looks for claims past their account's deadline (RF_STALE_CHECK_INTERVAL_S).
    stale_check_interval_s: float = Field(default=1.0, gt=0)
    # At most this many claims are marked per pass and transaction (RF_STALE_BATCH_SIZE); the next pass goes on.
    stale_batch_size: int = Field(default=100, ge=1, le=10_000)
