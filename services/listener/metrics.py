"""The listener's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MENTIONS = Counter(
    "crisiswatch_listener_mentions_total",
    "Input records by source and outcome (accepted, duplicate, rejected)",
    ["source", "outcome"],
)
REJECTED = Counter(
    "crisiswatch_listener_rejected_total", "Rejected input records by source and reason code", ["source", "reason"]
)
PRODUCE_ERRORS = Counter(
    "crisiswatch_listener_produce_errors_total", "Records the broker did not acknowledge", ["topic"]
)
INGEST_LATENCY = Histogram(
    "crisiswatch_listener_ingest_request_seconds",
    "HTTP ingest request handling time",
    ["status"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
INGEST_IN_FLIGHT = Gauge(
    "crisiswatch_listener_ingest_in_flight",
    "Ingest requests being handled now (reading, waiting for the broker); LISTENER_MAX_CONCURRENT_REQUESTS caps it",
)
INGEST_REFUSED = Counter(
    "crisiswatch_listener_ingest_refused_total",
    "Ingest requests answered with nothing counted as ingested (the client sends again), by client and reason "
    "(rate_limited, busy, body_timeout, broker_timeout)",
    ["client", "reason"],
)
