"""Event-time buckets per brand (pure): counting, deduplication and closing on the brand's watermark.

A bucket stays open until the brand's own stream has moved ``lateness`` past
its end; digests of the ids seen in open buckets make re-delivered mentions
no-ops, and a mention for a bucket already closed is dropped as late (it was
counted or was too late to count), so counts are exactly-once under
at-least-once delivery.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from crisiswatch.contracts.schemas import SampleMention, ScoredMention, Sentiment
from crisiswatch.themes.folding import RETWEET, fold_key

MAX_SAMPLES = 5
MAX_GAP_BUCKETS = 2016


class AddResult(enum.StrEnum):
    """What happened to a mention offered to the buckets."""

    COUNTED = "counted"
    DUPLICATE = "duplicate"
    LATE = "late"
    FUTURE = "future"


def id_digest(mention_id: str) -> int:
    """A 64-bit digest of a mention id: what dedup remembers (8 bytes whatever the id's length)."""
    return int.from_bytes(hashlib.blake2b(mention_id.encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class Bucket:
    """Counts for one brand over ``[start, start + width)``.

    A slotted dataclass rather than a model: every mention updates one, so
    attribute writes must be cheap. ``seen`` holds the digests of the ids
    counted here (see :func:`id_digest`), so a redelivered mention is a no-op;
    the odds that two different ids in a bucket of a hundred thousand share a
    digest (and one is dropped) are about one in four billion.
    """

    start: datetime
    total: int = 0
    negative: int = 0
    reach_negative: int = 0
    negative_echoes: int = 0
    """Negative mentions that were explicit retweets (``RT @author: ...``): one voice repeated."""
    samples: list[SampleMention] = field(default_factory=list)
    seen: set[int] = field(default_factory=set, repr=False)
    sample_keys: list[str] = field(default_factory=list, repr=False, compare=False)
    """The samples' :func:`fold_key`, kept beside them so a mention is compared without re-keying them all."""

    def keys_of_samples(self) -> list[str]:
        """:attr:`sample_keys`, computed again when the samples changed without them (a bucket read back from state)."""
        if len(self.sample_keys) != len(self.samples):
            self.sample_keys = [fold_key(sample.text) for sample in self.samples]
        return self.sample_keys

    def remember(self, mention_id: str, digest: int | None = None) -> int | None:
        """Record ``mention_id`` (``digest``: its :func:`id_digest`, if known); None when already counted here."""
        digest = id_digest(mention_id) if digest is None else digest
        if digest in self.seen:
            return None
        self.seen.add(digest)
        return digest


def sample_rank(negative_score: float, author_followers: int) -> float:
    """How influential a negative post is for an alert: confidence weighted by the log of the audience."""
    return negative_score * math.log10(10 + author_followers)


def _rank_inputs(sample: SampleMention) -> tuple[float, int]:
    """A sample's confidence and audience: its own author's followers and its near-duplicates'."""
    return sample.negative_score, sample.author_followers + sample.copies_followers


def _keep_sample(bucket: Bucket, mention: ScoredMention, negative_score: float) -> None:
    """Keep ``mention`` among the bucket's samples if it ranks there; a near-duplicate of one adds to its count.

    A copy never takes a slot of its own: its sample counts one more post
    and its author's followers, and may move up the ranking.
    """
    text = mention.text[:500]
    key = fold_key(text)
    samples, keys = bucket.samples, bucket.keys_of_samples()
    if key in keys:
        at = keys.index(key)
        twin = samples[at]
        samples[at] = twin.model_copy(
            update={"copies": twin.copies + 1, "copies_followers": twin.copies_followers + mention.author_followers}
        )
    elif len(samples) < MAX_SAMPLES or sample_rank(negative_score, mention.author_followers) > sample_rank(
        *_rank_inputs(samples[-1])
    ):
        samples.append(
            SampleMention(
                id=mention.id,
                text=text,
                author_handle=mention.author_handle,
                author_followers=mention.author_followers,
                url=mention.url,
                created_at=mention.created_at,
                negative_score=negative_score,
                lang=mention.lang,
            )
        )
        keys.append(key)
    else:
        return
    order = sorted(range(len(samples)), key=lambda i: sample_rank(*_rank_inputs(samples[i])), reverse=True)
    bucket.samples = [samples[i] for i in order[:MAX_SAMPLES]]
    bucket.sample_keys = [keys[i] for i in order[:MAX_SAMPLES]]


def top_samples(samples: list[SampleMention]) -> list[SampleMention]:
    """The ``MAX_SAMPLES`` most influential samples (see :func:`sample_rank`), most influential first."""
    return sorted(samples, key=lambda s: sample_rank(*_rank_inputs(s)), reverse=True)[:MAX_SAMPLES]


@dataclass(slots=True)
class BrandBuckets:
    """The open buckets of one brand and how far its stream has got.

    A slotted dataclass like ``Bucket`` (every mention moves the watermark);
    the alerter stores it in its own compact record.
    """

    open: list[Bucket] = field(default_factory=list)
    watermark: datetime | None = None
    next_to_close: datetime | None = None


def bucket_start(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket holding ``moment`` (buckets are aligned to the Unix epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + width * math.floor((moment - epoch) / width)


def add_mention(
    state: BrandBuckets,
    mention: ScoredMention,
    width: timedelta,
    digest: int | None = None,
    now: datetime | None = None,
    max_future: timedelta = timedelta(minutes=5),
) -> AddResult:
    """Count ``mention`` into its bucket (mutates ``state``); ``digest`` is its id's, when the caller has it.

    ``now`` is the wall clock of a live stream (None for a replay of
    history): a mention dated more than ``max_future`` after it is refused as
    ``FUTURE``, and the watermark never passes ``now``, so a source whose clock
    runs a few minutes fast is counted without making the brand's on-time
    mentions late.
    """
    created_at = mention.created_at
    if now is not None and created_at > now + max_future:
        return AddResult.FUTURE
    newest = state.open[-1] if state.open else None
    if newest is not None and newest.start <= created_at < newest.start + width:
        bucket = newest  # the common case; an open bucket is never late
    else:
        start = bucket_start(created_at, width)
        if state.next_to_close is not None and start < state.next_to_close:
            return AddResult.LATE
        found = next((b for b in state.open if b.start == start), None)
        if found is None:
            found = Bucket(start=start)
            state.open.append(found)
            state.open.sort(key=lambda b: b.start)
        bucket = found
    if bucket.remember(mention.id, digest) is None:
        return AddResult.DUPLICATE
    bucket.total += 1
    if mention.label is Sentiment.NEGATIVE:
        bucket.negative += 1
        bucket.reach_negative += mention.reach
        if RETWEET.match(mention.text):
            bucket.negative_echoes += 1
        negative_score = round(mention.scores.negative, 4)
        _keep_sample(bucket, mention, negative_score)
    reached = created_at if now is None or created_at <= now else now
    if state.watermark is None or reached > state.watermark:
        state.watermark = reached
    if state.next_to_close is None:
        state.next_to_close = bucket.start if reached == created_at else bucket_start(reached, width)
    return AddResult.COUNTED


def close_ready(
    state: BrandBuckets, width: timedelta, lateness: timedelta, now: datetime | None = None
) -> list[Bucket]:
    """Close every bucket that ended ``lateness`` before the watermark (or ``now``), empty ones included.

    Empty buckets matter: a quiet interval is evidence of a low rate, but only
    the last ``MAX_GAP_BUCKETS`` of a silence are closed one by one; the
    stretch before them is skipped, so a brand quiet for a month (or one stray
    mention dated years back) costs one bounded walk, not one per mention.
    """
    if state.next_to_close is None:
        return []
    latest = state.watermark if now is None else now if state.watermark is None else max(state.watermark, now)
    if latest is None:
        return []
    horizon = latest - lateness
    closed: list[Bucket] = []
    while state.next_to_close + width <= horizon and len(closed) < MAX_GAP_BUCKETS:
        upcoming = state.open[0].start if state.open else bucket_start(horizon, width)
        if upcoming - state.next_to_close > width * MAX_GAP_BUCKETS:
            state.next_to_close = upcoming - width * MAX_GAP_BUCKETS
        start = state.next_to_close
        if state.open and state.open[0].start == start:
            closed.append(state.open.pop(0))
        else:
            closed.append(Bucket(start=start))
        state.next_to_close = start + width
    return closed
