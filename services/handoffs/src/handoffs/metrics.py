"""Prometheus metrics of the handoffs service's stale-claim detector (the process-wide registry, as rfkit.metrics)."""

from prometheus_client import Counter, Histogram

STALE_CLAIMS_FOUND = Counter("rf_handoffs_stale_claims_total", "Claims found stale (once per claim)", ["service"])
STALE_CLAIMS_AUTO_RELEASED = Counter(
    "rf_handoffs_stale_auto_released_total", "Stale claims the system released (auto_release)", ["service"]
)
STALE_DETECTION_LAG = Histogram(
    "rf_handoffs_stale_detection_lag_seconds",
    "From a claim's deadline (claimed_at + stale_after_seconds) to the detector marking it stale",
    ["service"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
STALE_DETECTOR_ERRORS = Counter(
    "rf_handoffs_stale_detector_errors_total", "Detector passes that failed (retried at the next interval)", ["service"]
)
