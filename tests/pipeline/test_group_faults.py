"""Consumer-group faults on the real broker: a load that once dropped the alerter, members frozen past their session.

Each test ends with every mention handled exactly once: counted once, and
any redelivery recognised as a duplicate (the per-brand offsets make a
replay idempotent).
"""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from benchmarks.alerter import Workload, fill, scored_records

from ..conftest import Pipeline, metric_value, produce, wait_until
from ..factories import mention

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TEN_THOUSAND_BRANDS = Workload("10,000 brands, 1/min", 10_000, 1, 6)
SHORT_GROUP_TIMEOUTS = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_MAX_POLL_INTERVAL_MS": "12000"}
"""Short group timeouts, so that the group drops a frozen member soon and the tests stay cheap."""
PARTITIONS = 2
"""Of every topic the pipeline fixture creates."""
MENTIONS = "crisiswatch_alerter_mentions_total"
ASSIGNMENTS = "crisiswatch_alerter_partition_assignments_total"


def _probe(pipeline: Pipeline, service: str, path: str = "/livez") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[service]}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _every_scored_mention_read(pipeline: Pipeline) -> bool:
    """Whether the alerter has read all of ``mentions.scored``: its outcomes (counted, duplicate...) add up to it."""
    return metric_value(pipeline.metrics("alerter"), MENTIONS) >= pipeline.size(pipeline.topics.scored)


def _assert_each_counted_once(alerter: str, unique: int) -> None:
    """``alerter``'s /metrics show every mention counted once, and nothing else but recognised redeliveries."""
    assert metric_value(alerter, MENTIONS, 'outcome="counted"') == unique, "every mention counted, none twice"
    duplicates = metric_value(alerter, MENTIONS, 'outcome="duplicate"')
    assert metric_value(alerter, MENTIONS) == unique + duplicates, "nothing late, rejected or lost"


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


def test_an_alerter_frozen_past_its_session_rejoins_and_counts_every_mention_once(pipeline_factory) -> None:
    """Frozen (SIGSTOP) until the group dropped it, resumed (SIGCONT): it rejoins, catches up, counts each once.

    Resumed, it finds itself dropped (its heartbeat and commit are answered
    ``UnknownMemberIdError``) and must rejoin: the path that used to stall
    for good. The mentions that arrived meanwhile are counted once.
    """
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
    pipeline.wait_for_metric("alerter", ASSIGNMENTS, "", 2, timeout=120)
    pipeline.wait_for_metric("alerter", MENTIONS, 'outcome="counted"', len(records), timeout=180)
    wait_until(lambda: _every_scored_mention_read(pipeline), "the alerter to read every scored mention")
    _assert_each_counted_once(pipeline.metrics("alerter"), len(records))
    assert _probe(pipeline, "alerter") == 200, "rejoined and caught up: alive"


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
