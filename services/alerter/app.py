"""The faust-streaming app's topology: topics, tables, agents and timers, each calling a named function.

``detect`` reads ``mentions.scored`` and ``crisis.actions`` (both keyed by
brand and partitioned alike, so a brand's state lives in one partition and
one agent is its only writer) in batches for :class:`~.stages.DetectStage`.
``notify`` reads ``crisis.alerts`` for :class:`~.stages.NotifyStage`, which
delivers each ``(incident_id, revision)`` once by the rules of
:mod:`.delivery_policy`, remembering what it delivered in a changelogged
table. No model runs here: the event loop only does bookkeeping and network I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import faust

from crisiswatch.contracts.schemas import IncidentAction, utc_now
from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.runtime.health import HEARTBEAT_SECONDS, Health
from crisiswatch.runtime.kafka import KafkaSettings
from crisiswatch.runtime.metrics import BoundedLabel

from . import metrics, tables
from .consumer import CHANGELOG_BUFFER_RECORDS, detect_progress, faust_app, forget_expired_deliveries, report_lag
from .delivery import Notifier
from .group import mark_fetch_active
from .interactivity import Publish, Reject, SlackInteractivity
from .message import MessageComposer
from .processor import BrandProcessor, StateTables, brand_of_key, brand_sectors
from .settings import AlerterSettings
from .stages import DetectStage, NotifyStage, Record, dead_letter

PUBLISH_TIMEOUT_S = 2.5
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

Interactivity = Callable[[Publish, Reject], SlackInteractivity]


def build_app(
    settings: AlerterSettings,
    kafka: KafkaSettings,
    notifier: Notifier,
    partitions: int = 1,
    interactivity: Interactivity | None = None,
    health: Health | None = None,
    composer: MessageComposer | None = None,
) -> faust.App:
    """Create the alerter app with its topics, tables and agents.

    ``partitions`` must be the partition count of ``mentions.scored`` (and of
    ``crisis.actions``): each table's changelog is partitioned like its source,
    so a brand's state lives with its mentions. ``composer`` lays out alerts
    (the built-in templates when None); ``interactivity`` builds the Socket
    Mode service that publishes button presses; ``health`` gets the heartbeat.
    """
    topics, health = Topics(kafka.topic_prefix), health or Health()
    app = faust_app(settings, kafka, partitions)
    by_name = {name: app.topic(name, **RAW) for name in (topics.alerts, topics.dlq, topics.actions)}

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        await by_name[topic].send(key=key, value=value)

    def table(name: str, brand_of: Callable[[str], str], **options: Any) -> tables.BrandTable:
        return tables.add_brand_table(app, name, brand_of, partitions, **options)

    state = StateTables(
        buckets=table(tables.BUCKETS_TABLE, brand_of_key, default=lambda: None),
        seen=table(tables.SEEN_TABLE, brand_of_key),
        detector=table(tables.DETECTOR_TABLE, brand_of_key, default=lambda: None),
    )
    config = DetectorConfig(bucket=timedelta(minutes=settings.bucket_minutes), sensitivity=settings.sensitivity)
    lateness, future = timedelta(minutes=settings.lateness_minutes), timedelta(minutes=settings.max_future_minutes)
    processor = BrandProcessor(state, config, lateness, future, sectors=brand_sectors(settings.brands_file))
    detecting = DetectStage(
        processor, topics, send, BoundedLabel(settings.metric_brands_max), settings.max_future_minutes
    )
    deliveries = table(tables.DELIVERIES_TABLE, tables.brand_of_incident, default=lambda: None)
    notifying = NotifyStage(deliveries, (composer or MessageComposer()).compose, notifier, topics, send)
    busy_since: list[float | None] = [None]

    @app.agent(app.topic(topics.scored, topics.actions, **RAW))
    async def detect(stream: faust.StreamT[bytes]) -> None:
        """Batches of mentions and actions: state written and events sent once per batch, not per record."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            busy_since[0] = health.clock()
            await detecting.handle(Record(e.message.topic, e.message.offset, e.value or b"") for e in events)
            busy_since[0] = None

    @app.agent(by_name[topics.alerts])
    async def notify(stream: faust.StreamT[bytes]) -> None:
        """Each incident event, delivered once per revision."""
        async for value in stream:
            await notifying.handle(value or b"")

    @app.timer(interval=HEARTBEAT_SECONDS)
    async def heartbeat() -> None:
        """Beat unless a batch has been in hand too long; report the group consumer's progress (for ``/livez``)."""
        health.beat_unless_stuck(busy_since[0])
        if (progress := detect_progress(app, {topics.scored, topics.actions})) is not None:
            health.consumer_progress(*progress)

    @app.timer(interval=settings.deliveries_sweep_seconds)
    async def sweep_deliveries() -> None:
        """Forget what was delivered for incidents resolved more than the retention ago (only this worker's)."""
        cutoff = utc_now() - timedelta(days=settings.deliveries_retention_days)
        forget_expired_deliveries(app, deliveries, topics.alerts, partitions, cutoff)

    @app.timer(interval=settings.lag_refresh_seconds)
    async def lag() -> None:
        """Lag of both agents' source topics (best effort: the next tick retries during a rebalance)."""
        report_lag(app, {topics.scored, topics.actions, topics.alerts})

    @app.task
    async def widen_changelog_buffer() -> None:
        """Let a batch's state records queue for the producer instead of stalling the consumer."""
        app.producer.buffer.max_messages = CHANGELOG_BUFFER_RECORDS

    @app.on_partitions_revoked.connect
    async def on_revoke(app: faust.App, revoked: set[Any], **_: Any) -> None:
        """Forget brands whose partitions moved; mark the consumer active so aiokafka rejoins (``group.py``)."""
        moved = {tp.partition for tp in revoked if tp.topic == topics.scored}
        processor.forget([b for b in processor.brands() if tables.partition_for(b, partitions) in moved])
        mark_fetch_active(app)

    @app.on_partitions_assigned.connect
    async def count_assignment(app: faust.App, assigned: set[Any], **_: Any) -> None:
        """One more assignment: after the first, the group rebalanced (SREs alert on the rate)."""
        metrics.ASSIGNMENTS.inc()

    if interactivity is not None:

        async def publish(action: IncidentAction) -> None:
            sent = await by_name[topics.actions].send(key=action.brand.encode(), value=action.to_bytes())
            await asyncio.wait_for(asyncio.shield(sent), PUBLISH_TIMEOUT_S)

        async def reject(reason: str, payload: bytes) -> None:
            await dead_letter(send, topics, payload, reason, "slack.socket_mode")

        app.service(interactivity(publish, reject))

    return app
