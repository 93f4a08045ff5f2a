"""Prometheus metrics shared by every service (one process-wide registry, labelled by service)."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Histogram(
    "rf_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("rf_outbox_published_total", "Outbox events published", ["service", "topic"])
OUTBOX_PENDING = Gauge("rf_outbox_pending", "Outbox events not yet published at the last poll", ["service"])
OUTBOX_ERRORS = Counter("rf_outbox_publish_errors_total", "Failed outbox publish attempts", ["service"])
EVENTS_CONSUMED = Counter(
    "rf_events_consumed_total", "Events consumed", ["service", "topic", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter("rf_events_dead_lettered_total", "Events sent to a .dlq topic", ["service", "topic"])
# Kafka as each service sees it (rfkit.kafka_health): the alert rules in deploy/prometheus watch these.
KAFKA_UP = Gauge("rf_kafka_up", "1 when Kafka answered the service's last probe, else 0", ["service"])
KAFKA_OUTAGES = Counter("rf_kafka_outages_total", "Kafka outages the service has seen begin", ["service"])
KAFKA_OUTAGE_SECONDS = Counter(
    "rf_kafka_outage_seconds_total", "Total length of the Kafka outages that have ended", ["service"]
)
