"""Settings of the analytics service (environment variables with prefix RF_)."""

from pydantic import Field

from rfkit.settings import DomainServiceSettings


class Settings(DomainServiceSettings):
    service_name: str = "analytics"
    port: int = 8003
    # Consumer group of the read model (prefixed by topic_prefix); another name gives a side-by-side copy.
    consumer_group: str = "analytics"
    # Events applied per database transaction: larger batches amortise the per-transaction cost.
    consumer_max_records: int = 2000
    # Consuming allocates a few objects per field of every event: at CPython's default (700) young collections ran
    # every few dozen events and cost ~10 % of ingest (docs/benchmarks.md); fewer, larger ones here.
    gc_gen0_threshold: int = Field(default=10_000, ge=100)
    # Kafka consumers of the read model's group in one process (see rfkit ServiceRuntime.consumer).
    consumer_workers: int = Field(default=2, ge=1)
    # The business-seconds recompute loop (recompute.py): seconds between passes (a schedule change made through this
    # replica starts one at once), and handoffs priced per transaction (rows locked meanwhile; memory per batch).
    business_recompute: bool = True  # false: this process runs no loop (another replica does)
    business_recompute_interval_s: float = Field(default=5.0, gt=0)
    business_recompute_batch_size: int = Field(default=2000, ge=1)
