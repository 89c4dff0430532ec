"""The alerter's consumer-group helpers: the rejoin work-around's hold on aiokafka, and read progress."""

from __future__ import annotations

import asyncio
import time

from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition

from crisiswatch.alerter.group import mark_fetch_active, read_progress


class _App:
    """Just the path from a faust app to aiokafka's subscription state that the work-around walks."""

    def __init__(self, subscription: SubscriptionState) -> None:
        self.consumer = type("Consumer", (), {"_thread": type("Thread", (), {"_consumer": None})()})()
        self.consumer._thread._consumer = type("AIOKafkaConsumer", (), {"_subscription": subscription})()


def test_marking_the_fetch_active_resets_the_idle_time_aiokafka_checks_before_a_rejoin() -> None:
    """Pins the aiokafka internals the work-around for aio-libs/aiokafka#1187 relies on (aiokafka 0.14)."""
    subscription = SubscriptionState(loop=asyncio.new_event_loop())
    subscription._last_fetch_ended = time.monotonic() - 600
    assert subscription.fetcher_idle_time >= 600, "idle for ten minutes: aiokafka would skip the rejoin"
    assert mark_fetch_active(_App(subscription))
    assert subscription.fetcher_idle_time < 5, "now it counts as active and rejoins"


def test_marking_is_a_no_op_before_the_consumer_runs() -> None:
    app = _App(SubscriptionState(loop=asyncio.new_event_loop()))
    app.consumer._thread._consumer = None
    assert not mark_fetch_active(app)


def test_read_progress_counts_lag_from_the_read_or_committed_position_of_the_watched_partitions() -> None:
    scored0, scored1, alerts0, other = (
        TopicPartition("scored", 0),
        TopicPartition("scored", 1),
        TopicPartition("alerts", 0),
        TopicPartition("changelog", 0),
    )
    progress = read_progress(
        assigned={scored0, scored1, alerts0, other},
        ends={scored0: 100, scored1: 50, alerts0: 7, other: 1_000},
        read_offsets={scored0: 89},
        committed={scored1: 50, alerts0: None},
        watched={"scored", "alerts"},
    )
    assert progress.partitions == 3, "the changelog partition is not the stream's"
    assert progress.lag == 10 + 7, "scored-0 read up to 89 (10 left); scored-1 committed at its end; alerts-0 from 0"
    assert progress.position == 90 + 50
    unfetched = read_progress({scored0}, {}, {}, {scored0: 5}, {"scored"})
    assert unfetched.lag == 1, "no end known: not fetched since the assignment, so not caught up"
    idle = read_progress({scored1}, {scored1: 50}, {}, {scored1: 50}, {"scored"})
    assert idle.lag == 0, "a member that read nothing since its assignment but is at the end has no lag"
