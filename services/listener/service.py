"""The listener core: every input record ends as a mention on ``mentions.raw`` or a dead letter."""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from crisiswatch.contracts.schemas import DeadLetter, RejectionCode
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.records import (
    DEFAULT_MAPPING,
    EventTimeBounds,
    FieldMapping,
    RejectedInput,
    decode_json_object,
    to_mentions,
)
from crisiswatch.runtime.kafka import AckedProducer, OutgoingRecord

from . import metrics
from .dedup import RecentIds

log = logging.getLogger(__name__)


OUT_OF_RANGE = "out_of_range"
"""A replay's count of records rejected for a time outside the accepted span (also counted as rejected)."""


class Outcome(enum.StrEnum):
    """What happened to one input record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Listener:
    """Validates, deduplicates and produces mentions; rejects go to the dead-letter topic.

    Records are sent at once and confirmed by :meth:`flush` (every
    ``confirm_every`` records too, when set): nothing counts as ingested until
    the broker acknowledged it. A ``created_at`` outside ``bounds`` at the
    ``clock``'s time is rejected: event time drives every window downstream.
    """

    def __init__(
        self,
        producer: AckedProducer,
        topics: Topics,
        catalog: BrandCatalog,
        mapping: FieldMapping = DEFAULT_MAPPING,
        recent: RecentIds | None = None,
        confirm_every: int | None = 1000,
        bounds: EventTimeBounds | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.catalog = catalog
        self.mapping = mapping
        self.recent = recent or RecentIds()
        self.confirm_every = confirm_every
        self.bounds = bounds or EventTimeBounds()
        self.clock = clock
        self._unconfirmed_keys: list[str] = []
        self._sent_since_flush = 0

    def accept(self, raw: bytes | str | Mapping[str, Any], source: str) -> tuple[Outcome, RejectedInput | None]:
        """Handle one record (a JSON payload or an already-parsed row); return the outcome and any rejection."""
        try:
            record = raw if isinstance(raw, Mapping) else decode_json_object(raw)
            mentions = to_mentions(record, self.catalog, self.mapping, source, self.bounds, self.clock())
        except RecursionError:
            rejection = RejectedInput("the record is nested too deeply", RejectionCode.MALFORMED_JSON)
            self.reject(raw, source, rejection)
            return Outcome.REJECTED, rejection
        except RejectedInput as rejection:
            self.reject(raw, source, rejection)
            return Outcome.REJECTED, rejection
        fresh = [m for m in mentions if self.recent.first_time(f"{m.brand}/{m.id}")]
        if not fresh:
            metrics.MENTIONS.labels(source, Outcome.DUPLICATE).inc()
            return Outcome.DUPLICATE, None
        for mention in fresh:
            self._send(self.topics.raw, mention.brand.encode(), mention.to_bytes())
            self._unconfirmed_keys.append(f"{mention.brand}/{mention.id}")
        metrics.MENTIONS.labels(source, Outcome.ACCEPTED).inc()
        return Outcome.ACCEPTED, None

    def takes_time(self, moment: datetime) -> bool:
        """Whether a record dated ``moment`` is within the bounds now: only those pace a replay."""
        return self.bounds.contains(moment, self.clock())

    def reject(self, raw: bytes | str | Mapping[str, Any], source: str, rejection: RejectedInput) -> None:
        """Send the input with the rejection's reason and code to the dead-letter topic, and count it by code."""
        payload = raw if isinstance(raw, bytes | str) else _json_or_repr(raw)
        letter = DeadLetter.for_payload("listener", source, rejection.reason, payload, code=rejection.code)
        self._send(self.topics.dlq, None, letter.to_bytes())
        metrics.MENTIONS.labels(source, Outcome.REJECTED).inc()
        metrics.REJECTED.labels(source, rejection.code).inc()

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.producer.send(OutgoingRecord(topic, key, value))
        self._sent_since_flush += 1
        if self.confirm_every and self._sent_since_flush >= self.confirm_every:
            self.flush()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the broker acknowledged every record sent so far (resending refused ones).

        With ``timeout_s``, give up after it and return False: the ids sent
        since the last flush are forgotten, so a client that sends them again
        is not told they are duplicates (any that did land are deduplicated
        downstream by id).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        confirmed = self.producer.confirm(lambda: deadline is not None and time.monotonic() > deadline, timeout_s)
        if not confirmed:
            for key in self._unconfirmed_keys:
                self.recent.forget(key)
        self._unconfirmed_keys = []
        self._sent_since_flush = 0
        return confirmed


def _json_or_repr(record: Mapping[str, Any]) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(record)
    except RecursionError:
        return f"<a record nested too deeply to show; its fields: {', '.join(map(str, list(record)[:20]))}>"
