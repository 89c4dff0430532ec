"""What the alerter's two agents do with what they read, apart from faust.

:class:`DetectStage` takes a batch of scored mentions and button presses,
hands each to the :class:`~.processor.BrandProcessor`, reports the closed
buckets to the metrics and sends the incident events the batch caused.
:class:`NotifyStage` takes one incident event and delivers it by the rules of
:mod:`.delivery_policy`. Both send through an injected ``send(topic, key,
value)``, so the app wires them to faust topics and tests to anything else.
A record that cannot be read is dead-lettered with the reason; it never
stops a stage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import ValidationError

from crisiswatch.contracts.schemas import DeadLetter, Incident, IncidentAction, RejectionCode, ScoredMention, utc_now
from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.windows import AddResult
from crisiswatch.runtime.metrics import BoundedLabel

from . import metrics
from .delivery import Notifier
from .delivery_policy import deliver_once
from .message import AlertMessage
from .processor import BrandProcessor, BrandReport

log = logging.getLogger(__name__)
SCORED_SOURCE = "scored"
ACTIONS_SOURCE = "actions"

Send = Callable[[str, bytes | None, bytes], Awaitable[None]]
"""Sends ``value`` with ``key`` to the topic named first, once the broker has it."""


@dataclass(frozen=True)
class Record:
    """One record a stage reads: the topic it came from, its offset and its raw value."""

    topic: str
    offset: int
    value: bytes


async def dead_letter(
    send: Send, topics: Topics, payload: bytes, reason: str, source: str, code: RejectionCode | None = None
) -> None:
    """Keep ``payload`` in the dead-letter topic with the reason it was refused."""
    letter = DeadLetter.for_payload("alerter", source, reason, payload, code=code)
    await send(topics.dlq, None, letter.to_bytes())


@dataclass
class DetectStage:
    """Counts mentions and applies presses for the brands of one worker; sends the incident events they cause."""

    processor: BrandProcessor
    topics: Topics
    send: Send
    brand_label: BoundedLabel
    max_future_minutes: float

    async def handle(self, records: Iterable[Record]) -> None:
        """One batch: every record applied, then the state it changed written and its events sent, once."""
        incidents: list[Incident] = []
        for record in records:
            if record.topic == self.topics.actions:
                incidents += await self.act(record.value, record.offset)
            else:
                incidents += await self.count(record.value, record.offset)
        self.report(self.processor.flush())
        await self.emit(incidents)

    async def count(self, value: bytes, offset: int) -> list[Incident]:
        """Count one scored mention; the incident events its closed buckets caused."""
        try:
            mention = ScoredMention.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            await dead_letter(
                self.send, self.topics, value, f"not a valid ScoredMention: {str(error)[:300]}", self.topics.scored
            )
            metrics.MENTIONS.labels("rejected").inc()
            return []
        outcome, incidents = self.processor.add(mention, SCORED_SOURCE, offset)
        metrics.MENTIONS.labels(outcome.value).inc()
        if outcome is AddResult.FUTURE:
            reason = (
                f"created_at {mention.created_at.isoformat()} is more than ALERTER_MAX_FUTURE_MINUTES "
                f"({self.max_future_minutes:g}) ahead of the alerter's clock"
            )
            await dead_letter(
                self.send, self.topics, value, reason, self.topics.scored, code=RejectionCode.TIME_OUT_OF_RANGE
            )
        if outcome is AddResult.COUNTED:
            metrics.END_TO_END.observe(max(0.0, (utc_now() - mention.created_at).total_seconds()))
        return incidents

    async def act(self, value: bytes, offset: int) -> list[Incident]:
        """Apply a person's action to the brand's incident; the events that update the alert."""
        try:
            action = IncidentAction.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            reason = f"not a valid IncidentAction: {str(error)[:300]}"
            await dead_letter(self.send, self.topics, value, reason, self.topics.actions)
            metrics.ACTIONS.labels("unknown", "rejected").inc()
            return []
        outcome, incidents = self.processor.act(action, ACTIONS_SOURCE, offset)
        metrics.ACTIONS.labels(action.kind.value, outcome.value).inc()
        if any(incident.false_alarm for incident in incidents):
            metrics.FALSE_ALARMS.labels(self.brand_label(action.brand)).inc()
        log.info(
            "incident action",
            extra={"incident": action.incident_id, "action": action.kind.value, "outcome": outcome.value},
        )
        return incidents

    def report(self, reports: list[BrandReport]) -> None:
        """Each brand's last closed bucket, for the dashboards."""
        for brand_report in reports:
            label = self.brand_label(brand_report.brand)
            metrics.LEARNING.labels(label).set(int(brand_report.learning))
            metrics.BUCKETS.labels(label).inc(len(brand_report.verdicts))
            last = brand_report.verdicts[-1]
            metrics.SURPRISE.labels(label).set(last.score.surprise)
            metrics.NEGATIVE_RATE.labels(label).set(last.bucket.negative)

    async def emit(self, incidents: list[Incident]) -> None:
        """Send the incident events to ``crisis.alerts``, keyed by brand, in order."""
        for incident in incidents:
            await self.send(self.topics.alerts, incident.brand.encode(), incident.to_bytes())
            metrics.INCIDENTS.labels(incident.event.value, incident.severity.value).inc()
            log.info(
                "incident event",
                extra={
                    "brand": incident.brand,
                    "event": incident.event.value,
                    "incident": incident.incident_id,
                    "revision": incident.revision,
                    "severity": incident.severity.value,
                },
            )


@dataclass
class NotifyStage:
    """Delivers each incident event once per revision, remembering what it delivered in ``deliveries``."""

    deliveries: MutableMapping[str, Any]
    compose: Callable[[Incident], Awaitable[AlertMessage]]
    notifier: Notifier
    topics: Topics
    send: Send

    async def handle(self, payload: bytes) -> None:
        """Read the event and deliver it; an unreadable one is dead-lettered and the partition moves on."""
        try:
            incident = Incident.model_validate_json(payload)
        except (ValidationError, ValueError) as error:
            await dead_letter(self.send, self.topics, payload, f"not a valid Incident: {error}", self.topics.alerts)
            return
        refused = partial(dead_letter, self.send, self.topics, payload, source=self.topics.alerts)
        await deliver_once(incident, self.deliveries, self.compose, self.notifier, refused)
