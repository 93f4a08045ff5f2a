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
