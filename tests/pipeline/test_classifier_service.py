"""The classifier's loop on the real broker, with language routing: what is scored, unscored, failed and committed."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from crisiswatch.classifier.service import MAX_UNSCORED_LANGUAGES_LOGGED, ClassifierService
from crisiswatch.contracts.schemas import DeadLetter, Mention, SentimentScores
from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.broker import EmbeddedBroker
from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, ensure_topics, make_consumer
from crisiswatch.runtime.stop_signal import StopSignal
from crisiswatch.sentiment.batching import BatchPolicy
from crisiswatch.sentiment.routing import LanguageModels

from ..conftest import read_topic, wait_until

pytestmark = pytest.mark.pipeline


class FixedScorer:
    """A stand-in model that calls every text negative and fails on any batch holding ``fails_on``.

    Routing and the loop are under test here, not a model; the real models are
    routed end to end in tests/pipeline/test_routing.py and tests/pipeline/test_pipeline.py.
    """

    def __init__(self, name: str, fails_on: str | None = None) -> None:
        self.name = name
        self.fails_on = fails_on

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        if self.fails_on and any(self.fails_on in text for text in texts):
            raise RuntimeError("the model cannot read this text")
        return [SentimentScores(negative=1.0, neutral=0.0, positive=0.0) for _ in texts]

    def describe(self) -> dict[str, str]:
        return {"model": self.name}


def _count(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_pass_scores_each_language_on_its_model_commits_the_unscored_and_survives_a_failing_text(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topics = Topics(f"t{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka, topics.all(), partitions=1)
    when = datetime.now(UTC) - timedelta(minutes=1)
    unmapped = [f"q{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(MAX_UNSCORED_LANGUAGES_LOGGED + 10)]
    mentions = [
        *(
            Mention(id=f"x-{lang}", source="t", brand="acme-air", text="texte", lang=lang, created_at=when)
            for lang in unmapped
        ),
        Mention(id="he-boom", source="t", brand="acme-air", text="boom", lang="he", created_at=when),
        Mention(id="he-ok", source="t", brand="acme-air", text="שירות גרוע", lang="he-IL", created_at=when),
        Mention(id="en-ok", source="t", brand="acme-air", text="awful", lang="en", created_at=when),
        Mention(id="en-legacy", source="t", brand="acme-air", text="bad", lang="EN_us", created_at=when),
    ]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for mention in mentions:
        producer.send(topics.raw, key=b"acme-air", value=mention.to_bytes())
    producer.flush()
    producer.close()
    models = LanguageModels({"en": FixedScorer("en-model"), "he": FixedScorer("he-model", fails_on="boom")})
    group = topics.group("classifier-test")
    service = ClassifierService(
        models,
        make_consumer(kafka, group, [topics.raw], "classifier-test"),
        AckedProducer.for_settings(kafka, "classifier-test"),
        topics,
        BatchPolicy(max_batch_size=128, max_wait_s=0.005, lookahead_batches=1),
    )
    unscored_before = _count("crisiswatch_classifier_mentions_total", {"outcome": "unscored"})
    scored_before = _count("crisiswatch_classifier_mentions_total", {"outcome": "scored"})
    stop = StopSignal(install_handlers=False)
    loop = threading.Thread(target=service.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.WARNING, logger="crisiswatch.classifier.service"):
        loop.start()
        wait_until(
            lambda: _count("crisiswatch_classifier_mentions_total", {"outcome": "scored"}) - scored_before >= 3,
            "the scored mentions to be acknowledged",
        )
        stop.set()
        loop.join(60)
    assert not loop.is_alive()

    scored = {json.loads(v)["id"]: json.loads(v) for v in read_topic(broker.bootstrap_servers, topics.scored, 3)}
    assert sorted(scored) == ["en-legacy", "en-ok", "he-ok"], "unmapped languages are left unscored"
    assert scored["he-ok"]["model"] == "he-model" and scored["en-legacy"]["model"] == "en-model"
    [letter] = [DeadLetter.model_validate_json(v) for v in read_topic(broker.bootstrap_servers, topics.dlq, 1)]
    assert letter.reason == "the model failed on this text" and "he-boom" in letter.payload
    assert _count("crisiswatch_classifier_mentions_total", {"outcome": "unscored"}) - unscored_before == len(unmapped)
    named = [r for r in caplog.records if "left unscored" in r.getMessage()]
    assert len(named) == MAX_UNSCORED_LANGUAGES_LOGGED, "the log names a bounded number of languages"

    reader = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False)
    partition = TopicPartition(topics.raw, 0)
    assert reader.committed(partition) == len(mentions), "unscored and failed mentions are committed too"
    reader.close()
