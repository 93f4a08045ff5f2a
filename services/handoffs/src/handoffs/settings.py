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

    # The live queue, GET /handoffs/queue/stream (docs/operations.md, "The live queue").
    # A comment line after this much silence, so that proxies keep the stream open.
    queue_stream_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    # How long the change log keeps a change for clients that resume: at least the hour the contract promises.
    queue_stream_retention_s: int = Field(default=7200, ge=3600)
    # Rendered changes each process keeps per watched account; a client further behind reads the change log.
    queue_stream_ring_size: int = Field(default=1000, ge=1, le=100_000)
    # Beside NOTIFY, each watched account's log is read this often (covers a listener reconnecting).
    queue_stream_poll_s: float = Field(default=5.0, gt=0, le=60)
    queue_stream_purge_interval_s: float = Field(default=300.0, gt=0)
