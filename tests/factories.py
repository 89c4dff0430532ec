"""Builders for the objects many tests need: incident events, their evidence and history, scored mentions.

Each builder makes a plausible object with sensible defaults; a test names
only the fields its assertions are about and overrides them by keyword.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crisiswatch.contracts.schemas import (
    ActionKind,
    HistoryPoint,
    Incident,
    IncidentAction,
    IncidentEventType,
    Mention,
    SampleMention,
    ScoredMention,
    SentimentScores,
    Severity,
)

if TYPE_CHECKING:
    from crisiswatch.alerter.message import AlertMessage
    from crisiswatch.alerter.replies import Drafter

T0 = datetime(2026, 3, 2, 11, tzinfo=UTC)
NEGATIVE = SentimentScores(negative=0.9, neutral=0.05, positive=0.05)
NEUTRAL = SentimentScores(negative=0.05, neutral=0.9, positive=0.05)


def sample_mentions(texts: Iterable[str], **fields: Any) -> list[SampleMention]:
    """One piece of evidence per text, numbered from 0; ``fields`` apply to every one (e.g. ``lang="he"``)."""
    return [
        SampleMention(
            **{
                "id": str(i),
                "text": text,
                "author_handle": f"user{i}",
                "author_followers": 100,
                "url": None,
                "created_at": T0,
                "negative_score": 0.9,
                **fields,
            }
        )
        for i, text in enumerate(texts)
    ]


def history(
    start: datetime, points: int = 36, surge_from: int = 30, every: timedelta = timedelta(minutes=5)
) -> list[HistoryPoint]:
    """A brand's recent history for the alert's chart: calm, then a surge of negatives from point ``surge_from``."""
    return [
        HistoryPoint(
            start=start + i * every,
            total=20 + (60 if i >= surge_from else 0),
            negative=3 + (50 if i >= surge_from else 0),
            expected_negative=3.0,
            normal_low=0,
            normal_high=7,
        )
        for i in range(points)
    ]


def incident(
    event: IncidentEventType = IncidentEventType.OPENED,
    *,
    brand: str = "nimbus-bank",
    window_start: datetime = T0,
    **fields: Any,
) -> Incident:
    """An incident event about a clear crisis of ``brand`` in the ten minutes from ``window_start``.

    The id is the brand and the window's start, as the detector names it;
    any other field can be given by keyword.
    """
    return Incident(
        **{
            "incident_id": f"{brand}-{window_start:%Y%m%dT%H%M}",
            "revision": 1,
            "event": event,
            "brand": brand,
            "severity": Severity.CRITICAL,
            "window_start": window_start,
            "window_end": window_start + timedelta(minutes=10),
            "opened_at": window_start,
            "observed_negative": 41,
            "expected_negative": 1.5,
            "observed_total": 50,
            "expected_total": 12.0,
            "negative_share": 0.82,
            "baseline_negative_share": 0.12,
            "surprise": 43.4,
            "rule": "2 consecutive buckets above 3.0 surprise",
            **fields,
        }
    )


def incident_action(
    incident_id: str, brand: str, kind: ActionKind, user_id: str = "U0ANN0001", acted_at: datetime | None = None
) -> IncidentAction:
    """A person's button press on an incident (now, unless ``acted_at`` says when)."""
    return IncidentAction(
        incident_id=incident_id,
        brand=brand,
        kind=kind,
        user_id=user_id,
        acted_at=acted_at or datetime.now(UTC),
    )


def mention(mention_id: str, text: str = "Acme Air flight is late", brand: str = "acme-air", **fields: Any) -> Mention:
    """A raw mention as the listener publishes it, created now unless ``created_at`` says otherwise."""
    return Mention(
        **{"id": mention_id, "source": "t", "brand": brand, "text": text, "created_at": datetime.now(UTC), **fields}
    )


def scored_mention(
    mention_id: str, brand: str, created_at: datetime, negative: bool = False, **fields: Any
) -> ScoredMention:
    """A mention of ``brand`` as the classifier publishes it: a complaint if ``negative``, small talk otherwise."""
    return ScoredMention(
        **{
            "id": mention_id,
            "source": "test",
            "brand": brand,
            "text": f"{brand} app crashed again, card payments fail" if negative else f"using {brand} today",
            "created_at": created_at,
            "label": "negative" if negative else "neutral",
            "scores": NEGATIVE if negative else NEUTRAL,
            "model": "test-labels",
            **fields,
        }
    )


def scored_traffic(
    brand: str, start: datetime, minutes: int, per_minute: int, negative_every: int, tag: str
) -> list[ScoredMention]:
    """Already-scored mentions of ``brand``, ``per_minute`` a minute from ``start``; every n-th one negative."""
    return [
        scored_mention(
            f"{tag}-{minute}-{i}",
            brand,
            start + timedelta(minutes=minute, seconds=60 * i / per_minute),
            negative=(minute * per_minute + i) % negative_every == 0,
            author_handle=f"user{i}",
            author_followers=100 * (i + 1),
        )
        for minute in range(minutes)
        for i in range(per_minute)
    ]


def storm_then_calm(brand: str, calm_minutes: int = 150, storm_minutes: int = 10) -> tuple[list, list]:
    """A calm brand long enough to warm the detector up, then a storm of complaints; and the calm after, up to now.

    Returns (calm + storm, quiet afterwards): the first opens an incident, the
    second lets it resolve. It all lies in the recent past, as a live alerter
    takes it (it refuses mentions dated ahead of its clock).
    """
    after_minutes = 45
    storm_end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=after_minutes)
    storm_start = storm_end - timedelta(minutes=storm_minutes)
    calm_start = storm_start - timedelta(minutes=calm_minutes)
    before = scored_traffic(brand, calm_start, calm_minutes, 3, 5, "calm")
    storm = scored_traffic(brand, storm_start, storm_minutes, 20, 1, "storm")
    after = scored_traffic(brand, storm_end, after_minutes, 3, 5, "after")
    return [*before, *storm], after


def composed(incident: Incident, drafter: Drafter | None = None) -> AlertMessage:
    """The incident event composed for people with the built-in templates, as the notify stage does before sending."""
    from crisiswatch.alerter.message import MessageComposer

    return asyncio.run(MessageComposer(drafter=drafter).compose(incident))
