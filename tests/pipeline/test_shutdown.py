"""SIGTERM: the classifier finishes and commits the batch in hand, then exits cleanly."""

from __future__ import annotations

import signal

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crisiswatch.classifier.settings import ClassifierSettings

from ..conftest import Pipeline
from ..factories import mention

pytestmark = pytest.mark.pipeline
SENT = 3000
"""Enough that SIGTERM, sent once 32 are scored, lands mid-stream even on a CPU that scores hundreds a second."""


def test_sigterm_commits_exactly_what_was_scored(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory({"CLASSIFIER_MAX_BATCH_SIZE": "16", "CLASSIFIER_LOOKAHEAD_BATCHES": "2"})
    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    for i in range(SENT):
        raw = mention(f"s{i}", f"Acme Air flight {i} was late again")
        producer.send(pipeline.topics.raw, key=b"acme-air", value=raw.to_bytes())
    producer.flush()
    classifier = pipeline.start("classifier", "run")
    pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", 'outcome="scored"', 32)
    classifier.send_signal(signal.SIGTERM)
    assert classifier.wait(60) == 0
    scored = len(pipeline.read(pipeline.topics.scored))
    group = KafkaConsumer(
        bootstrap_servers=pipeline.broker.bootstrap_servers,
        group_id=pipeline.topics.group(ClassifierSettings().group_id),
        enable_auto_commit=False,
    )
    partitions = group.partitions_for_topic(pipeline.topics.raw) or set()
    committed = sum(group.committed(TopicPartition(pipeline.topics.raw, p)) or 0 for p in partitions)
    group.close(autocommit=False)
    assert 32 <= scored < SENT, "stopped mid-stream"
    assert committed == scored, "every scored mention is committed, and nothing unscored is"
