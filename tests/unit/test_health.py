"""Liveness and readiness from heartbeats: a stuck loop is dead, a silent broker is unready, /metrics still serves."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.health import BrokerWatch, Health
from crisiswatch.runtime.kafka import KafkaSettings, MetadataQuestion
from crisiswatch.runtime.metrics import serve_metrics

from ..conftest import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_loop_silent_past_its_limit_is_dead_and_a_silent_broker_makes_it_unready() -> None:
    clock = Clock()
    health = Health(stuck_after_s=60, unready_after_s=30, clock=clock)
    assert health.liveness()[0] and not health.readiness()[0], "starting: alive, not ready"
    health.beat()
    assert not health.readiness()[0], "no broker answer yet"
    health.broker_answered()
    assert health.readiness()[0]
    clock.now += 31
    health.beat()
    ready, why = health.readiness()
    assert not ready and "broker last answered 31 s ago" in why
    assert health.liveness()[0]
    clock.now += 61
    live, why = health.liveness()
    assert not live and "stuck" in why
    assert not health.readiness()[0]


def test_a_timer_beats_for_a_loop_unless_one_item_is_stuck_while_the_broker_answers() -> None:
    clock = Clock()
    health = Health(stuck_after_s=60, unready_after_s=30, clock=clock)
    health.broker_answered()
    busy_since = clock.now
    clock.now += 20
    health.beat_unless_stuck(busy_since)
    assert health.last_beat == clock.now, "an item in hand for a while is work, not a hang"
    clock.now += 45
    health.broker_answered()
    health.beat_unless_stuck(busy_since)
    assert health.last_beat == clock.now - 45, "in hand past the limit while the broker answers: stuck"
    clock.now += 40
    health.beat_unless_stuck(busy_since)
    assert health.last_beat == clock.now, "the broker went silent: the item waits for it, a restart would not help"
    health.beat_unless_stuck(None)
    assert health.liveness()[0]


def test_a_consumer_holding_no_partitions_past_the_limit_is_dead() -> None:
    clock = Clock()
    health = Health(stuck_after_s=60, unready_after_s=30, clock=clock, stalled_after_s=40)
    health.beat()
    health.broker_answered()
    health.consumer_progress(partitions=2, lag=0, position=10)
    for _ in range(8):
        clock.now += 5
        health.beat()
        health.broker_answered()
        health.consumer_progress(partitions=0, lag=0, position=10)
    assert health.liveness()[0], "40 s without partitions is a rebalance, not yet a stall"
    clock.now += 5
    health.beat()
    health.broker_answered()
    health.consumer_progress(partitions=0, lag=0, position=10)
    live, why = health.liveness()
    assert not live and "stalled" in why and "holds no partitions" in why


def test_lag_with_no_progress_past_the_limit_is_dead_but_an_idle_stream_or_a_reading_one_is_alive() -> None:
    clock = Clock()
    health = Health(stuck_after_s=600, unready_after_s=30, clock=clock, stalled_after_s=40)

    def tick(lag: int, position: int) -> None:
        clock.now += 5
        health.beat()
        health.broker_answered()
        health.consumer_progress(partitions=1, lag=lag, position=position)

    for _ in range(30):
        tick(lag=0, position=100)
    assert health.liveness()[0], "an idle stream with no lag stays healthy however long it is quiet"
    for step in range(30):
        tick(lag=5_000, position=100 + step)
    assert health.liveness()[0], "a consumer with lag that reads on is alive"
    for _ in range(9):
        tick(lag=5_000, position=500)
    assert health.liveness()[0], "the first of these read on; 40 s without reading since is within the limit"
    tick(lag=5_000, position=500)
    live, why = health.liveness()
    assert not live and "5000 records to read" in why
    tick(lag=4_000, position=1_500)
    assert health.liveness()[0], "reading again: alive again"


def test_a_consumer_waiting_for_a_silent_broker_is_not_stalled() -> None:
    clock = Clock()
    health = Health(stuck_after_s=600, unready_after_s=30, clock=clock, stalled_after_s=40)
    health.broker_answered()
    health.consumer_progress(partitions=1, lag=100, position=0)
    for _ in range(40):
        clock.now += 5
        health.beat()
        health.consumer_progress(partitions=0, lag=0, position=0)
    assert health.liveness()[0], "the broker is away: a restart would not bring it back"
    health.broker_answered()
    assert health.liveness()[0], "the stall clock restarts when the broker answers again"


def test_probes_are_served_beside_metrics_with_the_reason() -> None:
    clock = Clock()
    health = Health(stuck_after_s=60, unready_after_s=30, clock=clock)
    port = free_port()
    serve_metrics(port, "health-test", host="127.0.0.1", registry=CollectorRegistry(), health=health)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{base}/metrics")[0] == 200, "the metrics server")
    health.beat()
    health.broker_answered()
    assert _get(f"{base}/livez")[0] == 200
    assert _get(f"{base}/readyz")[0] == 200
    clock.now += 90
    status, body = _get(f"{base}/livez")
    assert status == 503 and "stuck" in body
    assert _get(f"{base}/readyz")[0] == 503
    assert _get(f"{base}/metrics")[0] == 200, "a stuck loop does not take the metrics down"


def test_the_broker_watch_marks_answers_from_a_real_broker_and_none_from_a_closed_port(
    broker: EmbeddedBroker,
) -> None:
    answered = Health()
    asking = MetadataQuestion(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), "t")
    watch = BrokerWatch(answered, asking, 0.2)
    watch.start()
    try:
        wait_until(lambda: answered.last_broker_answer is not None, "a metadata answer from the broker")
    finally:
        watch.stop(wait_s=30)
        asking.close()  # an open connection would hold up the session broker's shutdown by 5 s
    silent = Health()
    nobody = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", connect_deadline_s=0.2)
    question = MetadataQuestion(nobody, "t")
    watch = BrokerWatch(silent, question, 0.2).start()
    try:
        wait_until(lambda: question.asked >= 2, "two unanswered questions")
    finally:
        watch.stop()
    assert silent.last_broker_answer is None
