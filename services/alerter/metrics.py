"""The alerter's Prometheus metrics (per-brand series are capped by `ALERTER_METRIC_BRANDS_MAX`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
    "crisiswatch_alerter_deliveries_total",
    "Alert delivery attempts by channel and outcome (delivered; failed: retried; failed_final: refused for good;"
    " fallback: delivered by the fallback instead; duplicate: delivered before)",
    ["channel", "outcome"],
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
    "Button presses in Slack by action and outcome "
    "(received, rejected, not_allowed, answered; applied, unchanged, stale)",
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
SLACK_CREDENTIALS_REJECTED = Gauge(
    "crisiswatch_alerter_slack_credentials_rejected",
    "1 while Slack rejects the token or webhook of a notifier (slack, slack-fallback, webhook): every alert through it"
    " fails (invalid_auth, token_revoked...)",
    ["channel"],
)
UNDELIVERED_AGE = Gauge(
    "crisiswatch_alerter_undelivered_alert_age_seconds",
    "Seconds the alerter has been trying to deliver the oldest alert it has not yet delivered or given up on (0: none)",
)


class Undelivered:
    """The alerts being delivered right now, each with when the alerter began on it.

    ``UNDELIVERED_AGE`` reads :meth:`oldest_age` at every scrape, so an alert
    stuck in retries shows as a steadily growing age rather than as a value
    last set before the stall.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[object, float] = {}

    @contextmanager
    def track(self, key: object) -> Iterator[None]:
        """Count ``key`` as undelivered until the block ends, however it ends."""
        self._started.setdefault(key, self._clock())
        try:
            yield
        finally:
            self._started.pop(key, None)

    def oldest_age(self) -> float:
        """Seconds since the oldest alert still being delivered was begun on; 0 when there is none."""
        started = tuple(self._started.values())  # read from the scrape thread while the loop changes it
        return max((self._clock() - begun for begun in started), default=0.0)


UNDELIVERED = Undelivered()
UNDELIVERED_AGE.set_function(UNDELIVERED.oldest_age)
