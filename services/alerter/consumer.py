"""The alerter's faust consumer: the settings it runs under, and what its timers read from it."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import faust

from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.health import ReadProgress
from crisiswatch.runtime.kafka import KafkaSettings, faust_credentials
from crisiswatch.runtime.metrics import set_consumer_lag

from .delivery_policy import expired_deliveries
from .group import read_progress
from .settings import AlerterSettings
from .tables import brand_of_incident, partition_for

log = logging.getLogger(__name__)
MAX_FETCH_BYTES = 16 * 1024 * 1024
"""Per partition and fetch: faust's default (1 MiB) made the consumer wait on the broker between batches
and capped a drain at about 7,500 records/s; at 16 MiB a backlog drains at the stream's own pace."""
CHANGELOG_BUFFER_RECORDS = 50_000
"""Table writes that may queue for the producer: faust's default (100) stalled a batch touching thousands of
brands until the group dropped the worker; faust flushes the queue before every offset commit."""


def faust_app(settings: AlerterSettings, kafka: KafkaSettings, partitions: int) -> faust.App:
    """The faust app with the group, broker and changelog settings the alerter runs under."""
    return faust.App(
        Topics(kafka.topic_prefix).group(settings.app_id),
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


def report_lag(app: faust.App, watched: set[str]) -> None:
    """Lag of the ``watched`` topics' assigned partitions, from the high-water marks and the read offsets.

    Best effort: during a rebalance the consumer may not know its partitions yet; the next call retries.
    """
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in watched]
        ends = {tp: app.consumer.highwater(tp) for tp in assigned}
    except (RuntimeError, KeyError, AssertionError) as error:
        log.debug("consumer lag not available yet", extra={"error": str(error)})
        return
    positions = {tp: offset + 1 for tp, offset in app.monitor.tp_read_offsets.items() if tp in ends}
    set_consumer_lag("alerter", {tp: end for tp, end in ends.items() if end is not None}, positions)


def detect_progress(app: faust.App, watched: set[str]) -> ReadProgress | None:
    """What the ``detect`` agent's consumer holds and has read (``notify`` waits on Slack, not on the group).

    A table recovery counts as progress: the stream waits for it by design.
    None while the consumer cannot say (not started yet).
    """
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


def forget_expired_deliveries(
    app: faust.App, deliveries: MutableMapping[str, Any], alerts_topic: str, partitions: int, cutoff: datetime
) -> None:
    """Delete the delivery records of incidents resolved before ``cutoff``, of this worker's partitions only."""
    owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == alerts_topic}
    mine = {k: v for k, v in deliveries.items() if partition_for(brand_of_incident(k), partitions) in owned}
    expired = expired_deliveries(mine, cutoff)
    for key in expired:
        del deliveries[key]
    if expired:
        log.info("forgot deliveries of long-resolved incidents", extra={"incidents": len(expired)})
