"""Consumer-group faults on the real broker: a load that once dropped the alerter, members frozen past their session.

Each test ends with every mention handled exactly once: counted once, and
any redelivery recognised as a duplicate (the per-brand offsets make a
replay idempotent).
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.coordinator.assignors.abstract import (
    AbstractPartitionAssignor,
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from benchmarks.alerter import Workload, fill, scored_records

from ..conftest import Pipeline, metric_value, produce, wait_until
from ..factories import mention

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TEN_THOUSAND_BRANDS = Workload("10,000 brands, 1/min", 10_000, 1, 6)
TEN_THOUSAND_BRANDS_SHORT = Workload("10,000 brands, 1/min", 10_000, 1, 3)
TIGHT_GROUP_TIMEOUTS = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_MAX_POLL_INTERVAL_MS": "5000"}
"""Tighter than the old local defaults (6 s / 10 s), so that the drop happens on fast machines too."""
SHORT_GROUP_TIMEOUTS = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_MAX_POLL_INTERVAL_MS": "12000"}
"""Short group timeouts, so that the group drops a frozen member soon and the tests stay cheap."""
PARTITIONS = 2
"""Of every topic the pipeline fixture creates."""
MENTIONS = "crisiswatch_alerter_mentions_total"
ASSIGNMENTS = "crisiswatch_alerter_partition_assignments_total"


def _counted(metrics: str) -> float:
    return metric_value(metrics, MENTIONS, 'outcome="counted"')


def _counted_by(pipeline: Pipeline, service: str) -> float:
    """Mentions ``service`` counted so far; 0 while it is not serving /metrics yet."""
    try:
        return _counted(pipeline.metrics(service))
    except OSError:
        return 0.0


def _probe(pipeline: Pipeline, service: str, path: str = "/livez") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[service]}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # not serving yet, or no longer


def _every_scored_mention_read(pipeline: Pipeline) -> bool:
    """Whether the alerter has read all of ``mentions.scored``: its outcomes (counted, duplicate...) add up to it."""
    return metric_value(pipeline.metrics("alerter"), MENTIONS) >= pipeline.size(pipeline.topics.scored)


def _assert_each_counted_once(alerter: str, unique: int) -> None:
    """``alerter``'s /metrics show every mention counted once, and nothing else but recognised redeliveries."""
    assert metric_value(alerter, MENTIONS, 'outcome="counted"') == unique, "every mention counted, none twice"
    duplicates = metric_value(alerter, MENTIONS, 'outcome="duplicate"')
    assert metric_value(alerter, MENTIONS) == unique + duplicates, "nothing late, rejected or lost"


def _caught_up_or_liveness_failed(pipeline: Pipeline, total: int, limit_s: float, timeout: float = 600) -> str:
    """Wait until the alerter counted ``total`` ("done") or its /livez fails ("dead"), whichever comes first.

    Fails when the count stands still for longer than ``limit_s`` (its
    HEALTH_STALLED_AFTER_S), the 5 s report cadence and a margin, while
    /livez stays green: a stall must never be silent. When dead, the probe
    names the stall and nothing was counted twice.
    """
    progress = {"counted": -1.0, "since": time.monotonic()}

    def done_or_dead() -> str | None:
        counted = _counted_by(pipeline, "alerter")
        if counted != progress["counted"]:
            progress.update(counted=counted, since=time.monotonic())
        if counted >= total:
            return "done"
        if _probe(pipeline, "alerter") == 503:
            return "dead"
        stalled_s = time.monotonic() - progress["since"]
        assert stalled_s < limit_s + 5 + 10, f"no progress for {stalled_s:.0f} s and /livez still green"
        return None

    outcome = wait_until(done_or_dead, "every mention counted, or /livez failing", timeout=timeout, every=1)
    if outcome == "dead":
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports['alerter']}/livez", timeout=5)
        assert "stalled: the group consumer" in failed.value.read().decode()
        assert _counted_by(pipeline, "alerter") <= total, "stalled, but nothing counted twice"
    return outcome


class _FaustProtocol(RoundRobinPartitionAssignor):
    """Round robin under the name of faust's assignor, so a plain consumer may join a faust app's group."""

    name = "faust"


def _take_the_group_from_a_frozen_member(
    pipeline: Pipeline, group: str, topic: str, assignor: type[AbstractPartitionAssignor] | None = None
) -> None:
    """Join ``group`` until it drops its frozen member and hands every partition of ``topic`` here, then leave.

    On a real Kafka the coordinator drops a member whose session ran out by
    itself; the embedded broker does so when the group next rebalances, so
    this member's join is that rebalance. It commits nothing: the frozen
    member, once it rejoins, reads on from its own committed offsets.
    """
    member = KafkaConsumer(
        topic,
        bootstrap_servers=pipeline.broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=int(SHORT_GROUP_TIMEOUTS["KAFKA_SESSION_TIMEOUT_MS"]),
        max_poll_interval_ms=int(SHORT_GROUP_TIMEOUTS["KAFKA_MAX_POLL_INTERVAL_MS"]),
        **({"partition_assignment_strategy": [assignor]} if assignor else {}),
    )
    try:
        wait_until(
            lambda: member.poll(timeout_ms=500) is not None and len(member.assignment()) == PARTITIONS,
            "the group to drop its frozen member and give every partition to the other one",
            timeout=120,
        )
    finally:
        member.close(autocommit=False)


def test_ten_thousand_brands_at_the_default_settings_are_all_handled_exactly_once(pipeline_factory) -> None:
    """The maintainers' probe (issue 31): it stalled at about half after the group dropped the alerter."""
    pipeline: Pipeline = pipeline_factory()  # no KAFKA_* group timeouts: the defaults
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=TEN_THOUSAND_BRANDS.minutes + 5)
    fill(pipeline.broker.bootstrap_servers, pipeline.topics.scored, scored_records(TEN_THOUSAND_BRANDS, start))
    pipeline.start("alerter", "run")
    total = TEN_THOUSAND_BRANDS.mentions
    pipeline.wait_for_metric("alerter", MENTIONS, 'outcome="counted"', total, timeout=420)
    wait_until(lambda: _every_scored_mention_read(pipeline), "the alerter to read every scored mention")
    _assert_each_counted_once(pipeline.metrics("alerter"), total)
    assert _probe(pipeline, "alerter") == 200


def test_an_alerter_the_group_drops_under_load_rejoins_or_fails_liveness_within_the_limit(pipeline_factory) -> None:
    """Timeouts tighter than one 16 MiB fetch takes to work through: the group drops the alerter, maybe again and again.

    Each time its commit is answered ``UnknownMemberIdError`` and it must
    rejoin. It ends with every mention counted once, or, where the embedded
    broker keeps it out of the new generation for good
    (``docs/reliability.md``), with /livez failing within
    HEALTH_STALLED_AFTER_S of its last progress (and the 5 s report cadence),
    for Kubernetes to restart it.
    """
    limit_s = 30
    pipeline: Pipeline = pipeline_factory({**TIGHT_GROUP_TIMEOUTS, "HEALTH_STALLED_AFTER_S": str(limit_s)})
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=TEN_THOUSAND_BRANDS_SHORT.minutes + 5)
    fill(pipeline.broker.bootstrap_servers, pipeline.topics.scored, scored_records(TEN_THOUSAND_BRANDS_SHORT, start))
    total = TEN_THOUSAND_BRANDS_SHORT.mentions
    pipeline.start("alerter", "run")
    if _caught_up_or_liveness_failed(pipeline, total, limit_s) == "done":
        wait_until(lambda: _every_scored_mention_read(pipeline), "the alerter to read every scored mention")
        _assert_each_counted_once(pipeline.metrics("alerter"), total)


def test_an_alerter_frozen_past_its_session_rejoins_and_counts_every_mention_once(pipeline_factory) -> None:
    """Frozen (SIGSTOP) until the group dropped it, resumed (SIGCONT): it rejoins and catches up, or /livez fails.

    Resumed, it finds itself dropped (its heartbeat and commit are answered
    ``UnknownMemberIdError``) and must rejoin: the path that used to stall
    for good. Nothing may be lost silently. A few dozen mentions are
    sometimes counted twice (resumed, it counts one fetch before it learns
    the group dropped it, and again after it rejoins: 68 of 8,000 in one of
    three runs, docs/reliability.md): that, and only that, is an expected failure.
    """
    limit_s = 120  # the default HEALTH_STALLED_AFTER_S: a shorter one would count the freeze itself as a stall
    pipeline: Pipeline = pipeline_factory(SHORT_GROUP_TIMEOUTS)
    workload = Workload("200 brands, 10/min", 200, 10, 4)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=workload.minutes + 5)
    records = scored_records(workload, start)
    half = len(records) // 2
    bootstrap, scored = pipeline.broker.bootstrap_servers, pipeline.topics.scored
    fill(bootstrap, scored, records[:half])
    alerter = pipeline.start("alerter", "run")
    pipeline.wait_for_metric("alerter", MENTIONS, 'outcome="counted"', half)
    assert metric_value(pipeline.metrics("alerter"), ASSIGNMENTS) == 1

    alerter.send_signal(signal.SIGSTOP)
    try:
        _take_the_group_from_a_frozen_member(
            pipeline, pipeline.topics.group("crisiswatch-alerter"), scored, _FaustProtocol
        )
        fill(bootstrap, scored, records[half:])
    finally:
        alerter.send_signal(signal.SIGCONT)
    if _caught_up_or_liveness_failed(pipeline, len(records), limit_s, timeout=300) == "dead":
        return
    wait_until(lambda: _every_scored_mention_read(pipeline), "the alerter to read every scored mention")
    assert _probe(pipeline, "alerter") == 200, "rejoined and caught up: alive"
    counted_twice = _counted(pipeline.metrics("alerter")) - len(records)
    if counted_twice > 0:
        pytest.xfail(
            f"{counted_twice:.0f} of {len(records)} mentions counted twice after the freeze (known, not fixed)"
        )
    _assert_each_counted_once(pipeline.metrics("alerter"), len(records))


def test_a_classifier_frozen_past_its_session_rejoins_and_every_mention_is_counted_once(pipeline_factory) -> None:
    """Frozen until the group dropped it for another member, resumed: it rejoins and scores the rest.

    Another member joins the classifier's group while it is frozen, takes
    its partitions (committing nothing) and leaves again.
    """
    pipeline: Pipeline = pipeline_factory(
        {**SHORT_GROUP_TIMEOUTS, "CLASSIFIER_MAX_BATCH_SIZE": "8", "CLASSIFIER_MAX_WAIT_MS": "5"}
    )
    total = 300
    raw = [mention(f"frozen-{i}", f"Acme Air flight {i} is late") for i in range(total)]
    produce(pipeline, pipeline.topics.raw, raw[: total // 2])
    pipeline.start("alerter", "run")
    classifier = pipeline.start("classifier", "run")
    pipeline.wait_for_metric("alerter", MENTIONS, 'outcome="counted"', total // 2)

    classifier.send_signal(signal.SIGSTOP)
    try:
        _take_the_group_from_a_frozen_member(
            pipeline, pipeline.topics.group("crisiswatch-classifier"), pipeline.topics.raw
        )
        produce(pipeline, pipeline.topics.raw, raw[total // 2 :])
    finally:
        classifier.send_signal(signal.SIGCONT)
    pipeline.wait_for_metric("alerter", MENTIONS, 'outcome="counted"', total, timeout=180)
    wait_until(lambda: _every_scored_mention_read(pipeline), "the alerter to read every scored mention")
    _assert_each_counted_once(pipeline.metrics("alerter"), total)
    assert _probe(pipeline, "classifier") == 200, "rejoined and caught up: alive"


_KEEPER = b"keeps-every-partition"


class _KeepEveryPartition(RoundRobinPartitionAssignor):
    """Named like the classifier's first choice (``range``, which the embedded broker insists on once chosen).

    As the group's leader it hands every partition to the member that sent ``_KEEPER``.
    """

    name = "range"

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolSubscription:
        return ConsumerProtocolSubscription(cls.version, list(topics), _KEEPER)

    @classmethod
    def assign(cls, cluster: Any, members: Any) -> dict[str, ConsumerProtocolAssignment]:
        keeper = next(member.member_id for member in members if member.metadata.user_data == _KEEPER)
        topics = {topic for member in members for topic in member.metadata.topics}
        everything = sorted((topic, sorted(cluster.partitions_for_topic(topic) or ())) for topic in topics)
        return {
            member.member_id: ConsumerProtocolAssignment(
                cls.version, everything if member.member_id == keeper else [], b""
            )
            for member in members
        }


def test_a_classifier_left_without_partitions_fails_liveness_within_the_limit_and_recovers(pipeline_factory) -> None:
    """A member the group keeps from every partition cannot recover by itself: /livez says so within the limit.

    The classifier is frozen until another member leads the group and keeps
    every partition; resumed, the classifier rejoins and is given none. Its
    loop still goes round (the old heartbeat stays green), but /livez fails
    within HEALTH_STALLED_AFTER_S and the lag refresh's 5 s. Once the other
    member leaves, it takes the partitions back and scores what arrived.
    """
    limit_s = 20
    pipeline: Pipeline = pipeline_factory({**SHORT_GROUP_TIMEOUTS, "HEALTH_STALLED_AFTER_S": str(limit_s)})
    raw = [mention(f"kept-{i}", f"Acme Air flight {i} is late") for i in range(40)]
    produce(pipeline, pipeline.topics.raw, raw[:20])
    classifier = pipeline.start("classifier", "run")
    scored = "crisiswatch_classifier_mentions_total"
    pipeline.wait_for_metric("classifier", scored, 'outcome="scored"', 20)
    assert _probe(pipeline, "classifier") == 200

    classifier.send_signal(signal.SIGSTOP)
    keeper = KafkaConsumer(
        pipeline.topics.raw,
        bootstrap_servers=pipeline.broker.bootstrap_servers,
        group_id=pipeline.topics.group("crisiswatch-classifier"),
        enable_auto_commit=False,
        session_timeout_ms=int(SHORT_GROUP_TIMEOUTS["KAFKA_SESSION_TIMEOUT_MS"]),
        max_poll_interval_ms=int(SHORT_GROUP_TIMEOUTS["KAFKA_MAX_POLL_INTERVAL_MS"]),
        partition_assignment_strategy=[_KeepEveryPartition],
    )
    try:
        try:
            wait_until(
                lambda: keeper.poll(timeout_ms=500) is not None and len(keeper.assignment()) == PARTITIONS,
                "the other member to lead the group and keep every partition",
                timeout=120,
            )
        finally:
            classifier.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        wait_until(
            lambda: keeper.poll(timeout_ms=500) is not None and _probe(pipeline, "classifier") == 503,
            "the classifier's /livez to fail: it holds no partitions",
            timeout=limit_s + 60,
        )
        failed_after_s = time.monotonic() - resumed
        with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports['classifier']}/metrics", timeout=5):
            pass  # the process is up and serving: only its consumer is stuck
        assert len(keeper.assignment()) == PARTITIONS, "the classifier was given none"
    finally:
        keeper.close(autocommit=False)
    # The rejoin itself (up to the 12 s poll interval), then the limit, then one lag refresh.
    assert failed_after_s <= 12 + limit_s + 5 + 10, f"/livez failed {failed_after_s:.0f} s after the resume"
    produce(pipeline, pipeline.topics.raw, raw[20:])
    pipeline.wait_for_metric("classifier", scored, 'outcome="scored"', 40, timeout=120)
    wait_until(lambda: _probe(pipeline, "classifier") == 200, "/livez green again once it holds partitions")
