"""Consume → score → produce → commit, at least once.

Offsets are committed only after every scored record and dead letter of the
batch has been acknowledged by the broker (records the broker refused are sent
again, on a new client if need be), so a crash or a broker outage re-delivers
rather than loses; downstream deduplicates by mention id.

A pass's records are sent as soon as it is scored, but their acknowledgements
are awaited only after the next pass has been scored (or at once when nothing
else is waiting), so the model never idles through a broker round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from crisiswatch.contracts.schemas import (
    DeadLetter,
    Mention,
    ScoredMention,
    utc_now,
    validation_problems,
)
from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.health import Health
from crisiswatch.runtime.kafka import AckedProducer, OutgoingRecord
from crisiswatch.runtime.metrics import ConsumerLag
from crisiswatch.runtime.stop_signal import StopSignal
from crisiswatch.sentiment.batching import BatchPolicy
from crisiswatch.sentiment.routing import LanguageModels, Scorer, score_routed

from . import metrics

log = logging.getLogger(__name__)
MAX_UNSCORED_LANGUAGES_LOGGED = 50
"""Languages left unscored that the log names, each once; later ones are only counted."""


@dataclass
class _Pending:
    record: ConsumerRecord
    arrived: float


@dataclass
class _Delivery:
    """A scored pass whose records are sent but not yet acknowledged, hence not yet committed."""

    records: Sequence[ConsumerRecord]
    scored: list[ScoredMention]
    rejected: int
    unscored_labels: list[str]
    """The language label (``language_label``) of each mention left unscored."""


class ClassifierService:
    """The classifier's stream loop around the loaded models, one per language (:class:`LanguageModels`)."""

    def __init__(
        self,
        models: LanguageModels,
        consumer: KafkaConsumer,
        producer: AckedProducer,
        topics: Topics,
        policy: BatchPolicy,
        lag: ConsumerLag | None = None,
        health: Health | None = None,
    ) -> None:
        self.models = models
        self.health = health or Health()
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.policy = policy
        self.lag = lag
        self._stopping: StopSignal | None = None
        self._delivery: _Delivery | None = None
        self._unscored_logged: set[str] = set()

    def run(self, stop: StopSignal) -> None:
        """Loop until ``stop`` is set; the batch in hand is finished and committed before returning."""
        self._stopping = stop
        pending: list[_Pending] = []
        last_lag_refresh = 0.0
        while not stop.is_set() or pending or self._delivery:
            self.health.beat()
            oldest = time.monotonic() - pending[0].arrived if pending else 0.0
            if not stop.is_set():
                if self._delivery:
                    wait_ms = 0
                elif pending:
                    wait_ms = int(1000 * self.policy.time_left(len(pending), oldest)) or 1
                else:
                    wait_ms = 500
                room = self.policy.max_pending - len(pending)
                polled = self.consumer.poll(timeout_ms=wait_ms, max_records=room)
                now = time.monotonic()
                pending.extend(_Pending(r, now) for records in polled.values() for r in records)
                oldest = now - pending[0].arrived if pending else 0.0
            if pending and (stop.is_set() or self.policy.should_flush(len(pending), oldest)):
                self.process([p.record for p in pending], [p.arrived for p in pending])
                pending = []
            elif self._delivery:
                self.finish_delivery()
            if self.lag and time.monotonic() - last_lag_refresh > 5:
                last_lag_refresh = time.monotonic()
                self.health.consumer_progress(*self.lag.refresh(self.consumer))
        self.consumer.close(autocommit=False)
        self.producer.close()

    def process(self, records: Sequence[ConsumerRecord], arrived: Sequence[float]) -> None:
        """Score one pass, finish the previous pass's delivery, then send this pass's results and dead letters.

        This pass is committed by :meth:`finish_delivery` once the broker has
        acknowledged all of it.
        """
        mentions: list[Mention] = []
        outgoing: list[OutgoingRecord] = []
        rejected = 0
        for record in records:
            try:
                mentions.append(Mention.model_validate_json(record.value))
            except (ValidationError, ValueError) as error:
                reason = f"not a valid Mention: {_first_error(error)}"
                outgoing.append(self._dead_letter(record.value or b"", reason))
                rejected += 1
                metrics.ERRORS.labels("decode").inc()
        started = time.perf_counter()
        routed = score_routed(
            [m.text for m in mentions],
            [m.lang for m in mentions],
            self.models,
            self.policy.max_batch_size,
            on_group=_observe_group,
            on_batch_failure=_batch_failed,
        )
        elapsed = time.perf_counter() - started
        scored_at = utc_now()
        now = time.monotonic()
        for when in arrived:
            metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, now - when - elapsed))
        scored: list[ScoredMention] = []
        unscored: list[Mention] = []
        for mention, model, score in zip(mentions, routed.models, routed.scores, strict=True):
            if model is None:
                unscored.append(mention)
                continue
            if score is None:
                outgoing.append(self._dead_letter(mention.to_bytes(), "the model failed on this text"))
                rejected += 1
                continue
            result = ScoredMention(
                **mention.model_dump(exclude={"schema_version"}),
                label=score.label,
                scores=score,
                model=model,
                scored_at=scored_at,
            )
            scored.append(result)
            outgoing.append(OutgoingRecord(self.topics.scored, mention.brand.encode(), result.to_bytes()))
        self._log_unscored({m.lang for m in unscored})
        unscored_labels = [self.models.language_label(m.lang) for m in unscored]
        self.finish_delivery()
        for record in outgoing:
            self.producer.send(record)
        self._delivery = _Delivery(records, scored, rejected, unscored_labels)

    def _log_unscored(self, languages: set[str]) -> None:
        """Log each language left unscored the first time it is seen (the metric groups them as ``other``).

        At most :data:`MAX_UNSCORED_LANGUAGES_LOGGED` are named, so a producer
        writing odd language tags cannot flood the log.
        """
        for language in sorted(languages - self._unscored_logged):
            if len(self._unscored_logged) >= MAX_UNSCORED_LANGUAGES_LOGGED:
                return
            self._unscored_logged.add(language)
            log.warning(
                "mentions in this language have no model and are left unscored; map it in CLASSIFIER_MODELS",
                extra={"language": language},
            )

    def finish_delivery(self) -> None:
        """Wait until the broker has acknowledged the last pass sent, then count it and commit its offsets.

        If the broker stays away until the service is asked to stop, nothing is
        committed and the pass is delivered again after the restart.
        """
        delivery, self._delivery = self._delivery, None
        if delivery is None:
            return
        if not self.producer.confirm(self._waiting_on_broker):
            log.warning("stopping with a batch the broker never acknowledged; it will be delivered again")
            return
        self.health.broker_answered()
        metrics.SCORED.labels("rejected").inc(delivery.rejected)
        metrics.SCORED.labels("unscored").inc(len(delivery.unscored_labels))
        for label in delivery.unscored_labels:
            metrics.LANGUAGE.labels(label, metrics.NO_MODEL).inc()
        for result in delivery.scored:
            metrics.SCORED.labels("scored").inc()
            metrics.SENTIMENT.labels(result.label.value).inc()
            metrics.LANGUAGE.labels(self.models.language_label(result.lang), result.model).inc()
            metrics.END_TO_END.observe(max(0.0, (result.scored_at - result.created_at).total_seconds()))
        self._commit(delivery.records)

    def _waiting_on_broker(self) -> bool:
        """Asked between attempts while the broker is away: the loop is alive (waiting), and stops if told to.

        Waiting for the broker beats the heartbeat, so an outage makes the
        service unready (no broker answer) but not dead: a restart would not
        bring the broker back.
        """
        self.health.beat()
        return self._stopping.is_set() if self._stopping else False

    def _dead_letter(self, payload: bytes, reason: str) -> OutgoingRecord:
        letter = DeadLetter.for_payload("classifier", self.topics.raw, reason, payload)
        return OutgoingRecord(self.topics.dlq, None, letter.to_bytes())

    def _commit(self, records: Sequence[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if partition not in offsets or offsets[partition].offset <= record.offset:
                offsets[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets)
            self.health.broker_answered()
        except Exception as error:  # noqa: BLE001 - a failed commit means re-delivery, which dedup absorbs
            metrics.ERRORS.labels("commit").inc()
            log.warning("offset commit failed; the batch may be re-delivered", extra={"error": str(error)})


def _observe_group(scorer: Scorer, count: int, seconds: float) -> None:
    """One model's share of a pass: its batch size and the time it took."""
    metrics.BATCH_SIZE.observe(count)
    metrics.INFERENCE_SECONDS.observe(seconds)


def _batch_failed(scorer: Scorer, error: Exception) -> None:
    metrics.ERRORS.labels("inference").inc()
    log.error("batch inference failed; retrying texts one by one", extra={"model": scorer.name}, exc_info=error)


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return validation_problems(error, limit=1)
    return str(error)[:300]
