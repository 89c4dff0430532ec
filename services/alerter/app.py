"""The faust-streaming app: count, detect, record incidents, deliver them.

Two agents. ``detect`` reads ``mentions.scored`` and ``crisis.actions`` (both
keyed by brand and partitioned alike, so a brand's state lives in one
partition and one agent is its only writer), keeps buckets and detector state
in changelogged tables and writes incident events to ``crisis.alerts``. ``notify``
reads ``crisis.alerts`` and delivers each ``(incident_id, revision)`` once,
remembering what it delivered in a changelogged table so a restart neither
forgets an open incident nor sends an alert twice. No model runs here: the
event loop only does bookkeeping and network I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import faust
from pydantic import ValidationError

from crisiswatch.contracts.schemas import DeadLetter, Incident, IncidentAction, ScoredMention, utc_now
from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.detector import Decision, DetectorConfig, DetectorState, apply_action, judge
from crisiswatch.detection.windows import BRAND_BUCKETS, AddResult, BrandBuckets, add_mention, close_ready
from crisiswatch.runtime.kafka import KafkaSettings
from crisiswatch.runtime.metrics import BoundedLabel, set_consumer_lag

from . import metrics
from .delivery import DeliveryError, Notifier
from .interactivity import Publish, Reject, SlackInteractivity
from .settings import AlerterSettings

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0
DETECTOR_TABLE = "brand-detector"
"""The table of each brand's detector state; :mod:`.seeding` writes to its changelog."""
PUBLISH_TIMEOUT_S = 2.5

Interactivity = Callable[[Publish, Reject], SlackInteractivity]


def build_app(
    settings: AlerterSettings,
    kafka: KafkaSettings,
    notifier: Notifier,
    partitions: int = 1,
    interactivity: Interactivity | None = None,
) -> faust.App:
    """Create the alerter app with its topics, tables and agents.

    ``partitions`` must be the partition count of ``mentions.scored`` (and of
    ``crisis.actions``): each table's changelog is partitioned like its
    source, so a brand's state lives with its mentions. ``interactivity``
    builds the Socket Mode service that publishes button presses.
    """
    topics = Topics(kafka.topic_prefix)
    detector_config = DetectorConfig(
        bucket=timedelta(minutes=settings.bucket_minutes), sensitivity=settings.sensitivity
    )
    lateness = timedelta(minutes=settings.lateness_minutes)
    brand_label = BoundedLabel(settings.metric_brands_max)
    app = faust.App(
        topics.group(settings.app_id),
        broker=[f"kafka://{server}" for server in kafka.servers],
        store="memory://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=kafka.max_poll_interval_ms / 1000,
        broker_request_timeout=kafka.request_timeout_ms / 1000,
        broker_max_poll_interval=kafka.max_poll_interval_ms / 1000,
        producer_acks=-1,
    )
    raw_bytes: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    sources = app.topic(topics.scored, topics.actions, **raw_bytes)
    actions_topic = app.topic(topics.actions, **raw_bytes)
    alerts_topic = app.topic(topics.alerts, **raw_bytes)
    dlq_topic = app.topic(topics.dlq, **raw_bytes)
    json_table: dict[str, Any] = {
        "default": lambda: None,
        "schema": faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    }
    buckets_table = app.Table("brand-buckets", partitions=partitions, **json_table)
    detector_table = app.Table(DETECTOR_TABLE, partitions=partitions, **json_table)
    deliveries_table = app.Table("deliveries", partitions=partitions, **json_table)

    async def dead_letter(payload: bytes, reason: str, source: str = topics.scored) -> None:
        letter = DeadLetter.for_payload("alerter", source, reason, payload)
        await dlq_topic.send(value=letter.to_bytes())

    async def emit(brand: str, decisions: list[Decision]) -> None:
        for decision in decisions:
            incident = decision.incident()
            await alerts_topic.send(key=brand.encode(), value=incident.to_bytes())
            metrics.INCIDENTS.labels(incident.event.value, incident.severity.value).inc()
            log.info(
                "incident event",
                extra={
                    "brand": brand,
                    "event": incident.event.value,
                    "incident": incident.incident_id,
                    "revision": incident.revision,
                    "severity": incident.severity.value,
                },
            )

    def detector_state(brand: str) -> DetectorState:
        stored = detector_table[brand]
        return DetectorState.model_validate(stored) if stored else DetectorState.fresh(brand, detector_config)

    async def act(value: bytes) -> None:
        """Apply a person's action to the brand's incident; emits the event that updates the alert."""
        try:
            action = IncidentAction.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            await dead_letter(value, f"not a valid IncidentAction: {str(error)[:300]}", topics.actions)
            metrics.ACTIONS.labels("unknown", "rejected").inc()
            return
        state, outcome, decisions = apply_action(detector_state(action.brand), action, detector_config)
        metrics.ACTIONS.labels(action.kind.value, outcome.value).inc()
        if any(decision.false_alarm for decision in decisions):
            metrics.FALSE_ALARMS.labels(brand_label(action.brand)).inc()
        log.info(
            "incident action",
            extra={"incident": action.incident_id, "action": action.kind.value, "outcome": outcome.value},
        )
        if decisions:
            await emit(action.brand, decisions)
            detector_table[action.brand] = state.model_dump(mode="json")

    @app.agent(sources)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            value = event.value or b""
            if event.message.topic == topics.actions:
                await act(value)
                continue
            try:
                mention = ScoredMention.model_validate_json(value)
            except (ValidationError, ValueError) as error:
                await dead_letter(value, f"not a valid ScoredMention: {str(error)[:300]}")
                metrics.MENTIONS.labels("rejected").inc()
                continue
            brand = mention.brand
            stored_buckets = buckets_table[brand]
            brand_buckets = BRAND_BUCKETS.validate_python(stored_buckets) if stored_buckets else BrandBuckets()
            outcome = add_mention(brand_buckets, mention, detector_config.bucket)
            metrics.MENTIONS.labels(outcome.value).inc()
            if outcome is AddResult.COUNTED:
                metrics.END_TO_END.observe(max(0.0, (utc_now() - mention.created_at).total_seconds()))
            closed = close_ready(brand_buckets, detector_config.bucket, lateness)
            if closed:
                state = detector_state(brand)
                state.brand_name = mention.brand_name or state.brand_name
                state, verdicts = judge(state, closed, detector_config)
                label = brand_label(brand)
                metrics.LEARNING.labels(label).set(int(state.learning(detector_config)))
                for verdict in verdicts:
                    metrics.SURPRISE.labels(label).set(verdict.score.surprise)
                    metrics.NEGATIVE_RATE.labels(label).set(verdict.bucket.negative)
                    metrics.BUCKETS.labels(label).inc()
                    await emit(brand, verdict.decisions)
                detector_table[brand] = state.model_dump(mode="json")
            if outcome is not AddResult.DUPLICATE or closed:
                buckets_table[brand] = BRAND_BUCKETS.dump_python(brand_buckets, mode="json")

    @app.agent(alerts_topic)
    async def notify(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                incident = Incident.model_validate_json(value)
            except (ValidationError, ValueError) as error:
                letter = DeadLetter.for_payload(
                    "alerter", topics.alerts, f"not a valid Incident: {error}", value or b""
                )
                await dlq_topic.send(value=letter.to_bytes())
                continue
            delivered = deliveries_table[incident.incident_id] or {}
            if delivered.get("revision", 0) >= incident.revision:
                metrics.DELIVERIES.labels(notifier.channel, "duplicate").inc()
                continue
            thread = await deliver_with_retry(notifier, incident, delivered.get("thread"))
            deliveries_table[incident.incident_id] = {"revision": incident.revision, "thread": thread}

    @app.timer(interval=settings.lag_refresh_seconds)
    async def report_lag() -> None:
        """Lag of both agents' source topics from the consumer's high-water marks and the monitor's read offsets.

        Best effort: during a rebalance the consumer may not know its partitions yet; the next tick retries.
        """
        watched = {topics.scored, topics.actions, topics.alerts}
        try:
            assigned = [tp for tp in app.consumer.assignment() if tp.topic in watched]
            ends = {tp: app.consumer.highwater(tp) for tp in assigned}
        except (RuntimeError, KeyError, AssertionError) as error:
            log.debug("consumer lag not available yet", extra={"error": str(error)})
            return
        positions = {tp: offset + 1 for tp, offset in app.monitor.tp_read_offsets.items() if tp in ends}
        set_consumer_lag("alerter", {tp: end for tp, end in ends.items() if end is not None}, positions)

    if interactivity is not None:

        async def publish(action: IncidentAction) -> None:
            sent = await actions_topic.send(key=action.brand.encode(), value=action.to_bytes())
            await asyncio.wait_for(asyncio.shield(sent), PUBLISH_TIMEOUT_S)

        async def reject(reason: str, payload: bytes) -> None:
            await dead_letter(payload, reason, "slack.socket_mode")

        app.service(interactivity(publish, reject))

    return app


async def deliver_with_retry(
    notifier: Notifier, incident: Incident, thread: str | None, max_backoff_s: float = MAX_BACKOFF_S
) -> str | None:
    """Deliver, retrying with capped exponential backoff until it succeeds: an alert is never dropped."""
    backoff = 1.0
    while True:
        started = asyncio.get_running_loop().time()
        try:
            result = await notifier.deliver(incident, thread)
        except DeliveryError as error:
            metrics.DELIVERIES.labels(notifier.channel, "failed").inc()
            log.warning(
                "alert delivery failed; retrying",
                extra={
                    "incident": incident.incident_id,
                    "revision": incident.revision,
                    "error": str(error),
                    "retry_in_s": backoff,
                },
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        metrics.DELIVERIES.labels(notifier.channel, "delivered").inc()
        metrics.DELIVERY_SECONDS.labels(notifier.channel).observe(asyncio.get_running_loop().time() - started)
        return result
