"""Faults with real processes on the real broker: what a crash costs (nothing counted twice, nothing lost)."""

from __future__ import annotations

import signal
import time

import pytest
from kafka import KafkaProducer

from crisiswatch.contracts.schemas import Mention

from .conftest import Pipeline, metric_value

pytestmark = pytest.mark.pipeline
MENTIONS = 300


def test_a_classifier_killed_and_restarted_loses_nothing_and_counts_nothing_twice(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory({"CLASSIFIER_MAX_BATCH_SIZE": "8", "CLASSIFIER_MAX_WAIT_MS": "5"})
    moment = time.time()
    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    for i in range(MENTIONS):
        text = f"Acme Air flight {i} is late"
        mention = Mention(id=f"k{i}", source="t", brand="acme-air", text=text, created_at=moment)
        producer.send(pipeline.topics.raw, key=b"acme-air", value=mention.to_bytes())
    producer.flush()
    pipeline.start("alerter", "run")
    first = pipeline.start("classifier", "run")
    pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", 'outcome="scored"', 40)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    del pipeline.processes["classifier"]

    pipeline.start("classifier-restarted", "run")
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", 'outcome="counted"', MENTIONS)
    time.sleep(3)
    alerter = pipeline.metrics("alerter")
    scored = pipeline.read(pipeline.topics.scored)
    assert metric_value(alerter, "crisiswatch_alerter_mentions_total", 'outcome="counted"') == MENTIONS
    assert len(scored) >= MENTIONS, "at-least-once: whatever was in flight is scored again"
    redelivered = metric_value(alerter, "crisiswatch_alerter_mentions_total", 'outcome="duplicate"')
    assert redelivered == len(scored) - MENTIONS, "every redelivery was recognised as one"
