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
STREAM_FRAMES = Counter(
    "crisiswatch_listener_stream_frames_total",
    "Frames a live source (bluesky, mastodon:HOST) read, by outcome: matched (a brand's mention), unmatched, "
    "skipped (not a post), replayed (read again after a reconnect), refused (dead-lettered), edit, delete",
    ["source", "outcome"],
)
STREAM_REFUSED = Counter(
    "crisiswatch_listener_stream_refused_total",
    "Frames of a live source dead-lettered, by reason code (malformed_json, unknown_kind, too_large, deleted, ...)",
    ["source", "reason"],
)
STREAM_OUT_OF_ORDER = Counter(
    "crisiswatch_listener_stream_out_of_order_total",
    "Frames behind the furthest position read on their connection (still taken; duplicates dropped by id)",
    ["source"],
)
STREAM_RECONNECTS = Counter(
    "crisiswatch_listener_stream_reconnects_total",
    "Connections of a live source that ended or failed, by reason (closed, error, silent, refused, too_large)",
    ["source", "reason"],
)
STREAM_LAG = Gauge(
    "crisiswatch_listener_stream_lag_seconds",
    "Seconds between now and the network's time of the last frame the broker acknowledged",
    ["source"],
)
STREAM_SILENCE = Gauge(
    "crisiswatch_listener_stream_silence_seconds", "Seconds since a live source's last frame arrived", ["source"]
)
STREAM_QUEUE_DEPTH = Gauge(
    "crisiswatch_listener_stream_queue_depth",
    "Frames read and waiting for the broker; at LISTENER_STREAM_QUEUE_SIZE the source stops reading",
    ["source"],
)
STREAM_QUEUE_CAPACITY = Gauge(
    "crisiswatch_listener_stream_queue_capacity", "LISTENER_STREAM_QUEUE_SIZE of a live source", ["source"]
)
