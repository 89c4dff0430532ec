"""What the detector keeps and reports per brand: baseline, recent buckets, open incident, calibration, scores.

:class:`DetectorState` is everything the detector remembers about one brand,
JSON-serialisable for a changelogged table. The score tuples and the
verdict are made per bucket and never stored, so they are cheap named
tuples and frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from pydantic import BaseModel, Field

from crisiswatch.contracts.schemas import Incident, SampleMention, Severity

from .config import HOURS, DetectorConfig
from .memory import HourlyMemory
from .windows import Bucket


@dataclass(slots=True)
class Baseline:
    """What is normal for a brand: levels per bucket, their rhythm over the day, and their spread.

    ``negative`` and ``total`` are de-seasonalised levels; ``daily`` holds one
    multiplier per hour of the day (mean 1); ``dispersion`` is the extra-Poisson
    variance of negative counts (variance = mu + dispersion * mu^2), and
    ``window_dispersion`` the same for the sums over each look-back window
    length (in buckets): a burst of a few minutes adds spread to a bucket, but
    much less to a four-hour sum. A slotted dataclass, not a model: a new one
    is made for every brand and bucket (pydantic still validates and
    serialises it inside ``DetectorState``).
    """

    negative: float
    total: float
    dispersion: float = 0.0
    window_dispersion: dict[int, float] = field(default_factory=dict)
    daily: list[float] = field(default_factory=lambda: [1.0] * HOURS)
    buckets_seen: int = 0


@dataclass(slots=True)
class RecentBucket:
    """A closed bucket as the look-back windows need it: counts, what was expected, evidence.

    ``running_negative`` and ``running_expected`` are totals up to and including
    this bucket, so any window's sums are one subtraction (the scan runs for
    every brand every bucket, over windows of up to hundreds of buckets). A
    slotted dataclass, not a model, because one is made for every brand and
    bucket; pydantic still validates and serialises it inside
    ``DetectorState``.
    """

    start: datetime
    negative: int
    total: int
    expected_negative: float
    expected_total: float
    reach: int
    samples: list[SampleMention] = field(default_factory=list)
    running_negative: int = 0
    running_expected: float = 0.0

    def without_samples(self) -> RecentBucket:
        """A copy without the sample posts (they age out of alerts; the counts stay for the windows)."""
        return RecentBucket(
            self.start,
            self.negative,
            self.total,
            self.expected_negative,
            self.expected_total,
            self.reach,
            [],
            self.running_negative,
            self.running_expected,
        )


class OpenIncident(BaseModel):
    """The incident a brand is in, if any."""

    incident_id: str
    revision: int
    opened_at: datetime
    severity: Severity
    peak_negative: int
    total_negative: int
    quiet_buckets: int = 0
    alerted_at: datetime | None = None
    samples: list[SampleMention] = Field(default_factory=list)
    theme_posts: list[SampleMention] = Field(
        default_factory=list,
        description="every bucket's samples since the opening window, copies folded: what themes read",
    )
    acknowledged_by: str | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    horizon_hours: int = 0
    peak_size: dict[int, float] = Field(default_factory=dict)


class FalseAlarm(BaseModel):
    """The team's verdict that an incident was not a crisis: the largest size of surge per window in it, and when.

    A size is observed over expected negative mentions.
    """

    day: date
    levels: dict[int, float]


class Calibration(BaseModel):
    """How far each look-back window's surprise reaches on the brand's ordinary days, and the thresholds from that.

    Keys are window lengths in buckets, and minus the hours for day-scale
    horizons (``-12`` is the last 12 hours). ``daily_maxima`` holds one maximum per
    filed day (outside incidents), oldest first; ``thresholds`` are refreshed
    whenever a day is filed, so the per-bucket path only looks them up.
    """

    day: date | None = None
    day_maxima: dict[int, float] = Field(default_factory=dict)
    daily_maxima: dict[int, list[float]] = Field(default_factory=dict)
    thresholds: dict[int, float] = Field(default_factory=dict)


class DetectorState(BaseModel):
    """Everything the detector remembers about one brand (JSON-serialisable for a changelogged table)."""

    brand: str
    brand_name: str = ""
    baseline: Baseline
    recent: list[RecentBucket] = Field(default_factory=list)
    incident: OpenIncident | None = None
    cooldown_until: datetime | None = None
    incidents_opened: int = 0
    calibration: Calibration = Field(default_factory=Calibration)
    memory: HourlyMemory = Field(default_factory=HourlyMemory)
    false_alarms: list[FalseAlarm] = Field(default_factory=list)

    def learning(self, config: DetectorConfig) -> bool:
        """Whether the brand has less than ``learning_period`` of history: only extreme volume alerts then."""
        return self.baseline.buckets_seen < config.buckets(config.learning_period)

    @classmethod
    def fresh(cls, brand: str, config: DetectorConfig) -> DetectorState:
        """A brand never seen before starts from the prior."""
        return cls(
            brand=brand,
            baseline=Baseline(
                negative=config.per_bucket(config.prior_negative_per_hour),
                total=config.per_bucket(config.prior_total_per_hour),
            ),
        )


class BucketScore(NamedTuple):
    """How unusual one bucket is for the brand on its own (a named tuple: immutable, and cheap to make per bucket)."""

    expected_negative: float
    expected_total: float
    surprise: float


class WindowScore(NamedTuple):
    """How surprising one look-back window ending at the latest bucket is (several per brand and bucket).

    A day-scale horizon has ``hours`` set (its ``buckets`` then span it) and
    carries its own totals, start and share surprise (judged against the
    previous days' shares); a fast window's come from the recent buckets.
    """

    buckets: int
    observed: int
    expected: float
    surprise: float
    hours: int = 0
    observed_total: int = 0
    expected_total: float = 0.0
    start: datetime | None = None
    share_surprise: float = 0.0

    @property
    def key(self) -> int:
        """The calibration key: the length in buckets, or minus the hours for a day-scale horizon."""
        return -self.hours if self.hours else self.buckets


@dataclass(frozen=True)
class BucketVerdict:
    """One closed bucket as the detector judged it: its score, the spread it assumed, and any incident events.

    ``learning`` is whether the brand was still learning what is normal then
    (only extreme volume could alert).
    """

    bucket: Bucket
    score: BucketScore
    dispersion: float
    incidents: list[Incident]
    learning: bool = False
