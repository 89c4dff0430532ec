"""The alerter's Prometheus metrics (per-brand series are capped by `ALERTER_METRIC_BRANDS_MAX`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from crisiswatch.runtime.metrics import end_to_end_histogram

MENTIONS = Counter(
    "crisiswatch_alerter_mentions_total", "Scored mentions by outcome (counted, duplicate, late, rejected)", ["outcome"]
)
BUCKETS = Counter("crisiswatch_alerter_buckets_closed_total", "Closed per-brand buckets", ["brand"])
INCIDENTS = Counter("crisiswatch_alerter_incident_events_total", "Incident events emitted", ["event", "severity"])
NEGATIVE_RATE = Gauge(
    "crisiswatch_alerter_negative_per_bucket", "Negative mentions in the last closed bucket", ["brand"]
)
LEARNING = Gauge(
    "crisiswatch_alerter_brand_learning",
    "1 while a brand has less than a day of history: only extreme volume alerts until it has learnt what is normal",
    ["brand"],
)
SURPRISE = Gauge("crisiswatch_alerter_surprise", "Surprise (-log10 p) of the last closed bucket", ["brand"])
DELIVERIES = Counter(
    "crisiswatch_alerter_deliveries_total", "Alert delivery attempts by channel and outcome", ["channel", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "crisiswatch_alerter_delivery_seconds",
    "Time to deliver one alert",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
END_TO_END = end_to_end_histogram("alerted")
ACTIONS = Counter(
    "crisiswatch_alerter_actions_total",
    "Button presses in Slack by action and outcome (received, rejected, answered; applied, unchanged, stale)",
    ["action", "outcome"],
)
FALSE_ALARMS = Counter(
    "crisiswatch_alerter_false_alarms_total", "Incidents the team closed as not a crisis, per brand", ["brand"]
)
REFINEMENTS = Counter(
    "crisiswatch_alerter_reply_refinements_total",
    "Language-model refinements of drafted replies by outcome (refined, rejected, failed)",
    ["outcome"],
)
ASSIGNMENTS = Counter(
    "crisiswatch_alerter_partition_assignments_total",
    "Partition assignments received: 1 after start, more when the consumer group rebalanced",
)
