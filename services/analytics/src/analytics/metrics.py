"""Prometheus metrics of the analytics service's business-seconds recompute loop (the process-wide registry)."""

from prometheus_client import Counter, Gauge

BUSINESS_ROWS_RECOMPUTED = Counter(
    "rf_analytics_business_rows_recomputed_total",
    "Handoffs whose business seconds this process priced for their account's current schedule",
    ["service"],
)
BUSINESS_RECOMPUTE_ERRORS = Counter(
    "rf_analytics_business_recompute_errors_total", "Recompute passes that failed (retried next interval)", ["service"]
)
BUSINESS_RECOMPUTE_LAST_PASS = Gauge(
    "rf_analytics_business_recompute_last_pass_timestamp_seconds",
    "When this process last finished a recompute pass (the lag: now minus this, while passes keep failing)",
    ["service"],
)
BUSINESS_RECOMPUTE_PASS_SECONDS = Gauge(
    "rf_analytics_business_recompute_pass_seconds", "How long this process's last recompute pass took", ["service"]
)
