"""Event-time buckets per brand (pure): counting, deduplication and closing on the brand's watermark.

A bucket stays open until the brand's own stream has moved ``lateness`` past
its end; ids seen in open buckets make re-delivered mentions no-ops, and a
mention for a bucket already closed is dropped as late (it was counted or was
too late to count), so counts are exactly-once under at-least-once delivery.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from crisiswatch.contracts.schemas import SampleMention, ScoredMention, Sentiment

MAX_SAMPLES = 5
MAX_GAP_BUCKETS = 2016


class AddResult(enum.StrEnum):
    """What happened to a mention offered to the buckets."""

    COUNTED = "counted"
    DUPLICATE = "duplicate"
    LATE = "late"


class Bucket(BaseModel):
    """Counts for one brand over ``[start, start + width)``."""

    start: datetime
    total: int = 0
    negative: int = 0
    reach_negative: int = 0
    ids: list[str] = Field(default_factory=list)
    samples: list[SampleMention] = Field(default_factory=list)


class BrandBuckets(BaseModel):
    """The open buckets of one brand and how far its stream has got."""

    open: list[Bucket] = Field(default_factory=list)
    watermark: datetime | None = None
    next_to_close: datetime | None = None


def bucket_start(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket holding ``moment`` (buckets are aligned to the Unix epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + width * math.floor((moment - epoch) / width)


def add_mention(state: BrandBuckets, mention: ScoredMention, width: timedelta) -> AddResult:
    """Count ``mention`` into its bucket (mutates ``state``)."""
    start = bucket_start(mention.created_at, width)
    if state.next_to_close is not None and start < state.next_to_close:
        return AddResult.LATE
    bucket = next((b for b in state.open if b.start == start), None)
    if bucket is None:
        bucket = Bucket(start=start)
        state.open.append(bucket)
        state.open.sort(key=lambda b: b.start)
    if mention.id in bucket.ids:
        return AddResult.DUPLICATE
    bucket.ids.append(mention.id)
    bucket.total += 1
    if mention.label is Sentiment.NEGATIVE:
        bucket.negative += 1
        bucket.reach_negative += mention.reach
        sample = SampleMention(
            id=mention.id,
            text=mention.text[:500],
            author_handle=mention.author_handle,
            author_followers=mention.author_followers,
            url=mention.url,
            created_at=mention.created_at,
            negative_score=round(mention.scores.negative, 4),
        )
        bucket.samples.append(sample)
        bucket.samples.sort(key=lambda s: s.negative_score * math.log10(10 + s.author_followers), reverse=True)
        del bucket.samples[MAX_SAMPLES:]
    if state.watermark is None or mention.created_at > state.watermark:
        state.watermark = mention.created_at
    if state.next_to_close is None:
        state.next_to_close = start
    return AddResult.COUNTED


def close_ready(
    state: BrandBuckets, width: timedelta, lateness: timedelta, now: datetime | None = None
) -> list[Bucket]:
    """Close every bucket that ended ``lateness`` before the watermark (or ``now``), empty ones included.

    Empty buckets matter: a quiet interval is evidence of a low rate. At most
    ``MAX_GAP_BUCKETS`` are produced per call so a long silence stays cheap.
    """
    if state.next_to_close is None:
        return []
    horizon = max(t for t in (state.watermark, now) if t is not None) - lateness
    closed: list[Bucket] = []
    while state.next_to_close + width <= horizon and len(closed) < MAX_GAP_BUCKETS:
        start = state.next_to_close
        if state.open and state.open[0].start == start:
            closed.append(state.open.pop(0))
        else:
            closed.append(Bucket(start=start))
        state.next_to_close = start + width
    return closed
