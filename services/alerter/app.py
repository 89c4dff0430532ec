"""The faust-streaming app: count, detect, record incidents, deliver them.

Two agents. ``detect`` reads ``mentions.scored`` and ``crisis.actions`` (both
keyed by brand and partitioned alike, so a brand's state lives in one
partition and one agent is its only writer) in batches, hands each record to
the :class:`~.processor.BrandProcessor` and, at the end of the batch, writes
the state the batch changed and sends the incident events to
``crisis.alerts``. ``notify`` reads ``crisis.alerts`` and delivers each
``(incident_id, revision)`` once, remembering what it delivered in a
changelogged table so a restart neither forgets an open incident nor sends an
alert twice. An alert Slack refuses for good is dead-lettered with Slack's
reason and shown through the notifier's fallback instead, so it never holds
back the alerts behind it. Entries of incidents resolved more than
``deliveries_retention_days`` ago are swept. No model runs here: the event
loop only does bookkeeping and network I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import faust
from pydantic import ValidationError

from crisiswatch.contracts.schemas import (
    DeadLetter,
    Incident,
    IncidentAction,
    IncidentEventType,
    RejectionCode,
    ScoredMention,
    utc_now,
)
from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.windows import AddResult
from crisiswatch.runtime.health import HEARTBEAT_SECONDS, Health, ReadProgress
from crisiswatch.runtime.kafka import KafkaSettings, faust_credentials
from crisiswatch.runtime.metrics import BoundedLabel, set_consumer_lag
from crisiswatch.runtime.retry import Backoff, retry_async

from . import metrics
from .delivery import DeliveryError, Notifier, UndeliverableError
from .group import mark_fetch_active, read_progress
from .interactivity import Publish, Reject, SlackInteractivity
from .processor import BrandProcessor, BrandReport, StateTables, brand_of_key
from .settings import AlerterSettings
from .tables import (
    BUCKETS_TABLE,
    DELIVERIES_TABLE,
    DETECTOR_TABLE,
    SEEN_TABLE,
    BrandTable,
    brand_of_incident,
    partition_for,
)

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0
PUBLISH_TIMEOUT_S = 2.5
MAX_FETCH_BYTES = 16 * 1024 * 1024
"""Per partition and fetch: faust's default (1 MiB) made the consumer wait on the broker between batches
and capped a drain at about 7,500 records/s; at 16 MiB a backlog drains at the stream's own pace."""
CHANGELOG_BUFFER_RECORDS = 50_000
SCORED_SOURCE = "scored"
ACTIONS_SOURCE = "actions"

Interactivity = Callable[[Publish, Reject], SlackInteractivity]


def build_app(
    settings: AlerterSettings,
    kafka: KafkaSettings,
    notifier: Notifier,
    partitions: int = 1,
    interactivity: Interactivity | None = None,
    health: Health | None = None,
) -> faust.App:
    """Create the alerter app with its topics, tables and agents.

    ``partitions`` must be the partition count of ``mentions.scored`` (and of
    ``crisis.actions``): each table's changelog is partitioned like its
    source, so a brand's state lives with its mentions. ``interactivity``
    builds the Socket Mode service that publishes button presses; ``health``
    gets the stream's heartbeat.
    """
    topics = Topics(kafka.topic_prefix)
    detector_config = DetectorConfig(
        bucket=timedelta(minutes=settings.bucket_minutes), sensitivity=settings.sensitivity
    )
    brand_label = BoundedLabel(settings.metric_brands_max)
    health = health or Health()
    busy_since: list[float | None] = [None]
    app = faust.App(
        topics.group(settings.app_id),
        broker=[f"kafka://{server}" for server in kafka.servers],
        store="memory://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=settings.changelog_replicas,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=kafka.max_poll_interval_ms / 1000,
        broker_request_timeout=kafka.request_timeout_ms / 1000,
        broker_max_poll_interval=kafka.max_poll_interval_ms / 1000,
        producer_acks=-1,
        broker_credentials=faust_credentials(kafka),
        consumer_max_fetch_size=MAX_FETCH_BYTES,
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
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")

    def table(name: str, brand_of: Callable[[str], str], **options: Any) -> BrandTable:
        made = BrandTable(
            app, name=name, brand_of=brand_of, beacon=app.tables.beacon, partitions=partitions, schema=schema, **options
        )
        app.tables.add(made)
        return made

    processor = BrandProcessor(
        StateTables(
            buckets=table(BUCKETS_TABLE, brand_of_key, default=lambda: None),
            seen=table(SEEN_TABLE, brand_of_key),
            detector=table(DETECTOR_TABLE, brand_of_key, default=lambda: None),
        ),
        detector_config,
        timedelta(minutes=settings.lateness_minutes),
        timedelta(minutes=settings.max_future_minutes),
    )
    deliveries_table = table(DELIVERIES_TABLE, brand_of_incident, default=lambda: None)

    async def dead_letter(
        payload: bytes, reason: str, source: str = topics.scored, code: RejectionCode | None = None
    ) -> None:
        letter = DeadLetter.for_payload("alerter", source, reason, payload, code=code)
        await dlq_topic.send(value=letter.to_bytes())

    async def emit(incidents: list[Incident]) -> None:
        for incident in incidents:
            await alerts_topic.send(key=incident.brand.encode(), value=incident.to_bytes())
            metrics.INCIDENTS.labels(incident.event.value, incident.severity.value).inc()
            log.info(
                "incident event",
                extra={
                    "brand": incident.brand,
                    "event": incident.event.value,
                    "incident": incident.incident_id,
                    "revision": incident.revision,
                    "severity": incident.severity.value,
                },
            )

    async def act(value: bytes, offset: int) -> list[Incident]:
        """Apply a person's action to the brand's incident; the events that update the alert."""
        try:
            action = IncidentAction.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            await dead_letter(value, f"not a valid IncidentAction: {str(error)[:300]}", topics.actions)
            metrics.ACTIONS.labels("unknown", "rejected").inc()
            return []
        outcome, incidents = processor.act(action, ACTIONS_SOURCE, offset)
        metrics.ACTIONS.labels(action.kind.value, outcome.value).inc()
        if any(incident.false_alarm for incident in incidents):
            metrics.FALSE_ALARMS.labels(brand_label(action.brand)).inc()
        log.info(
            "incident action",
            extra={"incident": action.incident_id, "action": action.kind.value, "outcome": outcome.value},
        )
        return incidents

    async def count(value: bytes, offset: int) -> list[Incident]:
        """Count one scored mention; the incident events its closed buckets caused."""
        try:
            mention = ScoredMention.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            await dead_letter(value, f"not a valid ScoredMention: {str(error)[:300]}")
            metrics.MENTIONS.labels("rejected").inc()
            return []
        outcome, incidents = processor.add(mention, SCORED_SOURCE, offset)
        metrics.MENTIONS.labels(outcome.value).inc()
        if outcome is AddResult.FUTURE:
            reason = (
                f"created_at {mention.created_at.isoformat()} is more than ALERTER_MAX_FUTURE_MINUTES "
                f"({settings.max_future_minutes:g}) ahead of the alerter's clock"
            )
            await dead_letter(value, reason, code=RejectionCode.TIME_OUT_OF_RANGE)
        if outcome is AddResult.COUNTED:
            metrics.END_TO_END.observe(max(0.0, (utc_now() - mention.created_at).total_seconds()))
        return incidents

    def report(reports: list[BrandReport]) -> None:
        for brand_report in reports:
            label = brand_label(brand_report.brand)
            metrics.LEARNING.labels(label).set(int(brand_report.learning))
            metrics.BUCKETS.labels(label).inc(len(brand_report.verdicts))
            last = brand_report.verdicts[-1]
            metrics.SURPRISE.labels(label).set(last.score.surprise)
            metrics.NEGATIVE_RATE.labels(label).set(last.bucket.negative)

    @app.agent(sources)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        """Batches of mentions and actions: state written and events sent once per batch, not per record."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            busy_since[0] = health.clock()
            incidents: list[Incident] = []
            for event in events:
                value, message = event.value or b"", event.message
                if message.topic == topics.actions:
                    incidents += await act(value, message.offset)
                else:
                    incidents += await count(value, message.offset)
            report(processor.flush())
            await emit(incidents)
            busy_since[0] = None

    @app.timer(interval=HEARTBEAT_SECONDS)
    async def heartbeat() -> None:
        """The event loop runs and no batch has been in hand for longer than a loop may be silent.

        An idle stream yields no batches, so the beat comes from this timer;
        a batch stuck mid-way while the broker answers (a write that never
        completes) stops it, and ``/livez`` fails.
        """
        health.beat_unless_stuck(busy_since[0])
        progress = detect_progress()
        if progress is not None:
            health.consumer_progress(*progress)

    def detect_progress() -> ReadProgress | None:
        """What the ``detect`` agent's consumer holds and has read (``notify`` waits on Slack, not on the group).

        A table recovery counts as progress: the stream waits for it by
        design. None while the consumer cannot say (not started yet).
        """
        watched = {topics.scored, topics.actions}
        try:
            assigned = {tp for tp in app.consumer.assignment() if tp.topic in watched}
        except (RuntimeError, KeyError, AssertionError):
            return None
        if app.in_recovery and assigned:
            return ReadProgress(len(assigned), 0, 0)
        ends: dict[Any, int | None] = {}
        for tp in assigned:
            try:
                ends[tp] = app.consumer.highwater(tp)
            except (RuntimeError, KeyError, AssertionError):
                ends[tp] = None
        committed = getattr(app.consumer, "_committed_offset", {})
        return read_progress(assigned, ends, app.monitor.tp_read_offsets, committed, watched)

    @app.agent(alerts_topic)
    async def notify(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            payload = value or b""
            try:
                incident = Incident.model_validate_json(payload)
            except (ValidationError, ValueError) as error:
                await dead_letter(payload, f"not a valid Incident: {error}", topics.alerts)
                continue
            delivered = deliveries_table[incident.incident_id] or {}
            if delivered.get("revision", 0) >= incident.revision:
                metrics.DELIVERIES.labels(notifier.channel, "duplicate").inc()
                continue
            refused = partial(dead_letter, payload, source=topics.alerts)
            thread = await deliver_alert(notifier, incident, delivered.get("thread"), refused)
            record: dict[str, Any] = {"revision": incident.revision, "thread": thread}
            if incident.event is IncidentEventType.RESOLVED:
                record["resolved_at"] = utc_now().isoformat()
            deliveries_table[incident.incident_id] = record

    @app.timer(interval=settings.deliveries_sweep_seconds)
    async def sweep_deliveries() -> None:
        """Forget what was delivered for incidents resolved more than the retention ago (only this worker's)."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.alerts}
        cutoff = utc_now() - timedelta(days=settings.deliveries_retention_days)
        mine = {k: v for k, v in deliveries_table.items() if partition_for(brand_of_incident(k), partitions) in owned}
        expired = expired_deliveries(mine, cutoff)
        for key in expired:
            del deliveries_table[key]
        if expired:
            log.info("forgot deliveries of long-resolved incidents", extra={"incidents": len(expired)})

    @app.task
    async def widen_changelog_buffer() -> None:
        """Let a batch's state records queue for the producer instead of stalling the consumer.

        faust makes the stream wait whenever more than 100 table writes are
        pending; a batch that touches thousands of brands writes thousands of
        records at once, and those waits kept the worker from polling until
        the group dropped it. The producer drains the queue in the background,
        and faust flushes it before every offset commit.
        """
        app.producer.buffer.max_messages = CHANGELOG_BUFFER_RECORDS

    @app.on_partitions_revoked.connect
    async def drop_moved_brands(app: faust.App, revoked: set[Any], **_: Any) -> None:
        """Brands whose partitions moved away are reloaded from their tables if they ever come back."""
        moved = {tp.partition for tp in revoked if tp.topic == topics.scored}
        processor.forget([b for b in processor.brands() if partition_for(b, partitions) in moved])

    @app.on_partitions_revoked.connect
    async def let_the_group_rejoin(app: faust.App, revoked: set[Any], **_: Any) -> None:
        """The last step of faust's revoke: tell aiokafka the consumer is active, so it rejoins (see ``group.py``)."""
        mark_fetch_active(app)

    @app.on_partitions_assigned.connect
    async def count_assignment(app: faust.App, assigned: set[Any], **_: Any) -> None:
        """One more assignment: after the first, the group rebalanced (SREs alert on the rate)."""
        metrics.ASSIGNMENTS.inc()

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


def expired_deliveries(deliveries: Mapping[str, Any], cutoff: datetime) -> list[str]:
    """Incidents whose delivery record may go: resolved before ``cutoff`` (open ones are kept whatever their age)."""
    return [
        incident_id
        for incident_id, record in deliveries.items()
        if record and record.get("resolved_at") and datetime.fromisoformat(record["resolved_at"]) < cutoff
    ]


async def deliver_alert(
    notifier: Notifier,
    incident: Incident,
    thread: str | None,
    dead_letter: Callable[[str], Awaitable[None]],
    max_backoff_s: float = MAX_BACKOFF_S,
) -> str | None:
    """Deliver one incident event; one that Slack refuses for good never holds back the events behind it.

    Failures worth retrying are retried until they pass (Slack down: the
    event, and its partition, wait). A final refusal (``channel_not_found``,
    ``invalid_blocks``...) hands ``dead_letter`` the reason, for the event to
    be kept in the dead-letter topic, and the alert goes down the notifier's
    fallback chain (the fallback channel, then the console and alerts file),
    each link retried alike; when every link refuses, the event stays only in
    the dead-letter topic. Returns the thread to remember for the incident:
    the one that showed the alert, else ``thread``. While this runs, the
    event counts in the age of the oldest undelivered alert.
    """
    with metrics.UNDELIVERED.track((incident.incident_id, incident.revision)):
        current: Notifier | None = notifier
        given, outcome = thread, "delivered"
        while current is not None:
            try:
                shown = await deliver_with_retry(current, incident, given, max_backoff_s, outcome)
            except UndeliverableError as error:
                _refused(current, incident, error)
                if current is notifier:
                    await dead_letter(f"Slack refused the alert for good: {error}")
                current, given, outcome = current.fallback, None, "fallback"
                continue
            metrics.SLACK_CREDENTIALS_REJECTED.labels(current.channel).set(0)
            return shown or thread
        log.error(
            "no notifier could show the alert; it is kept only in the dead-letter topic",
            extra={"incident": incident.incident_id, "revision": incident.revision},
        )
        return thread


def _refused(notifier: Notifier, incident: Incident, error: UndeliverableError) -> None:
    """Count and log a final refusal; a refused token or webhook is critical, as every later alert will fail too."""
    metrics.DELIVERIES.labels(notifier.channel, "failed_final").inc()
    fields = {
        "incident": incident.incident_id,
        "revision": incident.revision,
        "channel": notifier.channel,
        "error": str(error)[:300],
        "slack_error": error.code,
        "fallback": notifier.fallback.channel if notifier.fallback is not None else None,
    }
    if error.credentials:
        metrics.SLACK_CREDENTIALS_REJECTED.labels(notifier.channel).set(1)
        log.critical(
            "Slack rejects the token or webhook: EVERY alert through it will fail until it is replaced", extra=fields
        )
    else:
        log.error("Slack refused the alert for good", extra=fields)


async def deliver_with_retry(
    notifier: Notifier,
    incident: Incident,
    thread: str | None,
    max_backoff_s: float = MAX_BACKOFF_S,
    outcome: str = "delivered",
) -> str | None:
    """Deliver through ``notifier``, retrying with capped exponential backoff while the failure is worth retrying.

    A :class:`~.delivery.UndeliverableError` passes through at once, for
    :func:`deliver_alert` to fall back. ``outcome`` is the label a success
    counts under (``fallback`` when the notifier stands in for another).
    """

    async def attempt() -> str | None:
        started = time.monotonic()
        result = await notifier.deliver(incident, thread)
        metrics.DELIVERY_SECONDS.labels(notifier.channel).observe(time.monotonic() - started)
        return result

    result = await retry_async(
        attempt,
        retry_on=DeliveryError,
        backoff=Backoff(first_s=1.0, max_s=max_backoff_s),
        on_failure=lambda _: metrics.DELIVERIES.labels(notifier.channel, "failed").inc(),
        log=log,
        message="alert delivery failed; retrying",
        extra={"incident": incident.incident_id, "revision": incident.revision},
    )
    metrics.DELIVERIES.labels(notifier.channel, outcome).inc()
    return result
