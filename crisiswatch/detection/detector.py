"""The crisis detector (pure and deterministic): closed buckets in, incident decisions out.

Negative mentions are counts, so they are judged as counts. Each brand has a
baseline that learns its level, its rhythm over the day and the week (the
weekly factors come from the brand's hourly memory, :mod:`.memory`) and its
spread; the expected count of a bucket is the level times both factors, and the
spread is negative binomial (variance ``mu + dispersion * mu**2``), which is
Poisson for a well-behaved brand and holds at a fraction of a mention per
bucket and at hundreds.

Every closed bucket (one minute by default) ends several look-back windows,
from two minutes to four hours: a sudden storm shows in a few buckets, a slow
burn over hours. For each window the surprise is ``-log10 P(X >= observed)``
of its summed count under the baseline, less the ``log10`` of the number of
windows tried (a Bonferroni correction). Each window length has its own
threshold, calibrated on the brand's history at that time scale: the level
its ordinary days' maxima reach once in ``calibration_return_days`` (a Gumbel
law fitted to them), never below ``open_surprise_floor``, and
``open_surprise`` until a few days are seen. So a brand whose chatter bursts
for five minutes every afternoon needs a bigger five-minute surge, while a
rise that holds for hours is still judged against how steady its hours are.
An incident opens when a window with at least ``min_negative`` mentions
reaches its threshold, or half of it while the negative share of all mentions
is itself surprising (the binomial tail of the brand's usual mix), and the
latest bucket is still above normal; no window is shorter than
``confirm_buckets``, so the evidence always spans several buckets. Severity
comes from how far the surprise passes the threshold, the velocity
(observed against expected rate) and the reach of the negative posts.

Day-scale horizons (the last 3, 6, 12 and 24 hours) are judged the same way,
but against the same hours of the previous days rather than the level, which
follows a rise that builds over hours (:func:`horizon_scores`). A brand with
less than ``learning_period`` of history is learning: only extreme volume
opens an incident (:func:`learning_alarm`).

The baseline's rhythm and spread are frozen while a brand is hot, so neither
a spike nor a slow burn teaches it that storms are normal. Its level keeps
learning during an incident, but slowly (``incident_level_halflife``, each
bucket clipped): a crisis of a few hours barely moves it, while a lasting
shift in how much a brand is talked about becomes its normal within a day or
two and lets the incident end, instead of holding it open until someone
resolves it. The incident resolves only after ``resolve_quiet`` without
surprise (hysteresis), and the brand cannot re-open within ``cooldown``.
Escalation to a higher severity is the only re-alert, and it waits
``escalation_gap`` after the last alert.
People act on an open incident through :func:`apply_action` (acknowledge,
assign, snooze, resolve, not a crisis); each change is an incident event of
its own, and "not a crisis" keeps a repeat of the same size quiet.
The same code runs in the live alerter and in offline backtests.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from scipy import special
from scipy.stats import gumbel_r, nbinom, poisson

from crisiswatch.contracts.schemas import (
    ActionKind,
    HistoryPoint,
    Incident,
    IncidentAction,
    IncidentEventType,
    SampleMention,
    Severity,
)

from .memory import (
    HorizonCounts,
    HourlyMemory,
    MemorySettings,
    derived,
    horizon_counts,
    hour_of_week,
    part_of_day,
    remember,
)
from .windows import Bucket, sample_rank

HOURS = 24
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MAX_SURPRISE = 300.0
HISTORY_POINTS = 60
_GUMBEL_IQR = math.log(math.log(4)) - math.log(math.log(4 / 3))
_nodes, _weights = np.polynomial.hermite.hermgauss(24)
_HERMITE_NODES = math.sqrt(2) * _nodes
_HERMITE_WEIGHTS = _weights / math.sqrt(math.pi)


class Sensitivity(enum.StrEnum):
    """How readily a brand alerts ("fewer" alerts, "balanced", or "more")."""

    FEWER = "fewer"
    BALANCED = "balanced"
    MORE = "more"


_SURPRISE_SCALE = {Sensitivity.FEWER: 1.4, Sensitivity.BALANCED: 1.0, Sensitivity.MORE: 0.75}


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's settings; surprises are in -log10 probability units, durations in time."""

    bucket: timedelta = timedelta(minutes=1)
    sensitivity: Sensitivity = Sensitivity.BALANCED
    windows: tuple[timedelta, ...] = field(default=tuple(MINUTE * m for m in (1, 2, 5, 15, 30, 60, 120, 240)))
    prior_negative_per_hour: float = 6.0
    prior_total_per_hour: float = 60.0
    prior_pseudo_buckets: float = 2.0
    warmup: timedelta = timedelta(hours=2)
    learning_period: timedelta = timedelta(days=1)
    learning_alert_negative: int = 30
    learning_alert_window: timedelta = timedelta(minutes=15)
    learning_alert_surprise: float = 8.0
    memory: MemorySettings = field(default_factory=MemorySettings)
    false_alarm_margin: float = 1.25
    baseline_halflife: timedelta = timedelta(hours=12)
    incident_level_halflife: timedelta = timedelta(days=1)
    seasonal_halflife_days: float = 2.0
    dispersion_halflife: timedelta = timedelta(days=3)
    max_dispersion: float = 2.0
    min_dispersion: float = 0.02
    early_dispersion: float = 0.25
    early_span: timedelta = timedelta(days=1)
    floor_negative_per_hour: float = 0.6
    winsor_sigmas: float = 3.0
    hot_surprise: float = 3.0
    open_surprise: float = 12.0
    open_surprise_floor: float = 12.0
    calibration_days: int = 14
    calibration_min_days: int = 3
    calibration_return_days: float = 21.0
    horizon_return_days: float = 90.0
    min_negative: int = 8
    warning_reach: int = 100_000
    critical_reach: int = 1_000_000
    confirm_buckets: int = 2
    resolve_surprise: float = 1.3
    resolve_window: timedelta = timedelta(minutes=15)
    resolve_quiet: timedelta = timedelta(minutes=15)
    cooldown: timedelta = timedelta(hours=12)
    escalation_gap: timedelta = timedelta(minutes=30)
    sample_span: timedelta = timedelta(minutes=30)

    def scaled(self, value: float) -> float:
        """A surprise threshold adjusted for the sensitivity setting."""
        return value * _SURPRISE_SCALE[self.sensitivity]

    def buckets(self, span: timedelta) -> int:
        """How many buckets cover ``span`` (at least one)."""
        return _buckets_in(span, self.bucket)

    def window_lengths(self) -> tuple[int, ...]:
        """The look-back windows in buckets that may open an incident, shortest first, without repeats.

        None is shorter than ``confirm_buckets``: one burst alone never opens one.
        """
        return _window_lengths(self.windows, self.bucket, self.confirm_buckets)

    def horizon_floor(self, hours: int) -> float:
        """The least surprise a day-scale horizon needs: in a calm brand, once per ``horizon_return_days``.

        A horizon of ``hours`` is ``24 / hours`` nearly independent looks a
        day, so ``-log10(1 / (horizon_return_days * 24 / hours))``; the
        horizons tried are already corrected for in each surprise.
        """
        return math.log10(self.horizon_return_days * 24 / hours)

    def per_bucket(self, per_hour: float) -> float:
        """A per-hour rate expressed per bucket."""
        return per_hour * self.bucket_hours

    @functools.cached_property
    def bucket_hours(self) -> float:
        """The bucket width in hours."""
        return self.bucket / timedelta(hours=1)


@functools.cache
def _buckets_in(span: timedelta, bucket: timedelta) -> int:
    return max(1, round(span / bucket))


@functools.cache
def _window_lengths(windows: tuple[timedelta, ...], bucket: timedelta, confirm: int) -> tuple[int, ...]:
    return tuple(sorted({max(_buckets_in(w, bucket), confirm) for w in windows}))


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
class Decision:
    """An incident event the detector wants emitted, with every number that explains it."""

    event: IncidentEventType
    incident_id: str
    revision: int
    brand: str
    severity: Severity
    window_start: datetime
    window_end: datetime
    opened_at: datetime
    observed_negative: int
    expected_negative: float
    observed_total: int
    expected_total: float
    negative_share: float
    baseline_negative_share: float
    surprise: float
    reach: int
    rule: str
    samples: tuple[SampleMention, ...]
    peak_negative: int
    total_negative: int
    history: tuple[HistoryPoint, ...] = ()
    acknowledged_by: str | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    acted_by: str | None = None
    brand_name: str = ""
    false_alarm: bool = False
    horizon: str = ""

    def incident(self) -> Incident:
        """The wire event for this decision."""
        fields = {k: v for k, v in vars(self).items() if k not in ("samples", "history")}
        return Incident(**fields, sample_mentions=list(self.samples), history=list(self.history))


@dataclass(frozen=True)
class BucketVerdict:
    """One closed bucket as the detector judged it: its score, the spread it assumed, and any events.

    ``learning`` is whether the brand was still learning what is normal then
    (only extreme volume could alert).
    """

    bucket: Bucket
    score: BucketScore
    dispersion: float
    decisions: list[Decision]
    learning: bool = False


def tail_surprise(observed: int, expected: float, dispersion: float = 0.0) -> float:
    """``-log10 P(X >= observed)``; 0 when nothing exceeds expectation, at most ``MAX_SURPRISE``.

    ``X`` is Poisson(expected) or, with ``dispersion`` > 0, negative binomial
    with that mean and variance ``expected + dispersion * expected**2``. The
    tails come from the regularised incomplete gamma and beta functions that
    ``scipy.stats`` uses for these laws, called directly: the detector scores
    several windows per bucket for every brand, and the frozen-distribution
    machinery costs a hundred times more per call than the maths.
    """
    if observed <= 0 or observed <= expected:
        return 0.0
    mean = max(expected, 1e-9)
    if dispersion < 1e-6:
        tail = special.pdtrc(observed - 1, mean)
    else:
        size = 1 / dispersion
        tail = special.betainc(observed, size, mean / (size + mean))
    return surprise_of(tail)


def surprise_of(tail: float) -> float:
    """``-log10`` of a tail probability, at most ``MAX_SURPRISE`` (also when the tail underflows to 0)."""
    return min(MAX_SURPRISE, float(-math.log10(tail))) if tail > 0 else MAX_SURPRISE


def share_surprise(negative: int, total: int, normal_share: float) -> float:
    """``-log10 P(at least `negative` of `total` mentions are negative)`` when each is with ``normal_share``.

    The binomial tail (``scipy.special.bdtrc``, what ``scipy.stats.binom.sf``
    computes): how unlikely the window's negative share is for the brand's
    usual mix. 0 when the share is not above normal, at most ``MAX_SURPRISE``.
    """
    if total <= 0 or negative <= 0 or negative <= normal_share * total:
        return 0.0
    if normal_share <= 0:
        return MAX_SURPRISE
    if normal_share >= 1:
        return 0.0
    tail = special.bdtrc(negative - 1, total, normal_share)
    return surprise_of(tail)


def expected_counts(
    baseline: Baseline, config: DetectorConfig, moment: datetime, weekly: tuple[float, ...] | None = None
) -> tuple[float, float]:
    """Expected negative and total mentions in the bucket starting at ``moment`` (hour of day, then of the week)."""
    factor = baseline.daily[moment.hour] * (weekly[hour_of_week(moment)] if weekly else 1.0)
    floor = config.per_bucket(config.floor_negative_per_hour)
    return max(baseline.negative * factor, floor), max(baseline.total * factor, 1e-3)


def score(
    baseline: Baseline, bucket: Bucket, config: DetectorConfig, weekly: tuple[float, ...] | None = None
) -> BucketScore:
    """The bucket's expected counts and its own surprise."""
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start, weekly)
    surprise = tail_surprise(bucket.negative, expected_negative, baseline.dispersion)
    return BucketScore(expected_negative, expected_total, surprise)


def window_scores(
    recent: list[RecentBucket], dispersions: Mapping[int, float], lengths: tuple[int, ...]
) -> list[WindowScore]:
    """The surprise of each window of ``lengths`` buckets that ends at the latest bucket (those that fit).

    Each window length has its own spread (``dispersions``, see
    :func:`window_dispersions`); each surprise is corrected for the number of
    windows tried.
    """
    if not recent or not lengths:
        return []
    correction = math.log10(len(lengths))
    last, first = recent[-1], recent[0]
    scores = []
    for n in lengths:
        if n > len(recent):
            break
        before = recent[-n - 1] if n < len(recent) else None
        observed = last.running_negative - (
            before.running_negative if before else first.running_negative - first.negative
        )
        expected = last.running_expected - (
            before.running_expected if before else first.running_expected - first.expected_negative
        )
        expected = expected if expected > 0.0 else 0.0
        surprise = tail_surprise(observed, expected, dispersions[n]) - correction if observed > expected else 0.0
        scores.append(WindowScore(n, observed, expected, surprise if surprise > 0.0 else 0.0))
    return scores


def scan(recent: list[RecentBucket], dispersions: Mapping[int, float], lengths: tuple[int, ...]) -> WindowScore:
    """The most surprising window among those of ``lengths`` buckets ending at the latest bucket."""
    return most_surprising(window_scores(recent, dispersions, lengths))


def alarm_ratio(state: DetectorState, config: DetectorConfig) -> float:
    """How near the brand's latest look-back windows are to opening an incident: 1 is at the threshold.

    The largest window surprise (fast windows and day-scale horizons) over
    that window's (calibrated, sensitivity-scaled) threshold; 0 during the
    warm-up, when nothing is judged; while the brand is learning, how near
    the extreme-volume rule is (both its count and its surprise). A score for
    charts and exports: the share rule and the other conditions of
    :func:`alarm` are not in it.
    """
    if state.baseline.buckets_seen < config.buckets(config.warmup):
        return 0.0
    if state.learning(config):
        window = learning_window(state, config)
        needed = config.scaled(config.learning_alert_surprise)
        return min(window.observed / config.learning_alert_negative, window.surprise / needed)
    thresholds = open_thresholds(state, config)
    windows = window_scores(state.recent, window_dispersions(state.baseline, config), config.window_lengths())
    if state.recent:
        windows += horizon_scores(state.memory, state.recent[-1].start + config.bucket, config)
    return max((w.surprise / config.scaled(thresholds[w.key]) for w in windows), default=0.0)


def most_surprising(windows: list[WindowScore]) -> WindowScore:
    """The window with the largest surprise (an empty window when there is none)."""
    return max(windows, key=lambda w: w.surprise, default=WindowScore(1, 0, 0.0, 0.0))


def updated_baseline(
    baseline: Baseline,
    bucket: Bucket,
    config: DetectorConfig,
    calm: bool = True,
    windows: Sequence[WindowScore] = (),
    during_incident: bool = False,
    weekly: tuple[float, ...] | None = None,
) -> Baseline:
    """Fold a closed bucket into the baseline: level, hour-of-day rhythm and spread.

    While history is short the levels are running means of what was seen, with
    the prior counting as ``prior_pseudo_buckets`` observations; after the
    warm-up they are EWMAs of buckets clipped to ``winsor_sigmas`` standard
    deviations above expectation, so no single bucket drags the baseline up
    (never less than that many mentions: at a twentieth of a mention per
    bucket, clipping every single post would teach the brand it is quieter
    than it is; during an incident that floor is dropped, so a storm in a
    quiet brand is clipped at its own spread, not a whole mention above).
    The rhythm and the spread are learnt only while the look-back windows are
    unsurprising (``calm``), so a slow burn is not mistaken for the time of
    day and a surge is never explained away as noise; each look-back window's
    spread is learnt the same way from its sums (``windows``). During an
    incident only the level learns, at ``incident_level_halflife``. Each
    bucket's evidence about the rhythm is shrunk by one pseudo-count,
    ``(n + 1) / (mu + 1)``: still unbiased for Poisson counts, but a single
    post in a quiet bucket no longer reads as a five-fold rise. Counts are
    divided by the ``weekly`` factor of their hour of the week first, so the
    level is the brand's weekly average and a weekend trough does not lower
    Monday's expectation.
    """
    seen = baseline.buckets_seen
    warm = seen >= config.buckets(config.warmup)
    if during_incident:
        alpha = 1 - 0.5 ** (config.bucket / config.incident_level_halflife)
        calm = False
    else:
        alpha = max(1 - 0.5 ** (config.bucket / config.baseline_halflife), 1 / (seen + 1 + config.prior_pseudo_buckets))
    hour = bucket.start.hour
    week = weekly[hour_of_week(bucket.start)] if weekly else 1.0
    factor = baseline.daily[hour]
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start, weekly)
    negative, total = float(bucket.negative), float(bucket.total)
    if warm:
        least = 0.0 if during_incident else 1.0
        spread = max(least, math.sqrt(expected_negative + baseline.dispersion * expected_negative**2))
        negative = min(negative, expected_negative + config.winsor_sigmas * spread)
        total_spread = max(least, math.sqrt(expected_total + baseline.dispersion * expected_total**2))
        total = min(total, expected_total + config.winsor_sigmas * total_spread)
    daily = list(baseline.daily)
    dispersion = baseline.dispersion
    window_dispersion = baseline.window_dispersion
    if warm:
        if calm and baseline.negative > 0:
            updates_per_slot = config.seasonal_halflife_days * (timedelta(hours=1) / config.bucket)
            rate = 1 - 0.5 ** (1 / updates_per_slot)
            observed_factor = min(max((negative / week + 1) / (baseline.negative + 1), 0.2), 5.0)
            daily[hour] = (1 - rate) * factor + rate * observed_factor
            mean = sum(daily) / HOURS
            daily = [f / mean for f in daily]
        if calm:
            rate = 1 - 0.5 ** (config.bucket / config.dispersion_halflife)
            if expected_negative >= 1.0:
                dispersion = _learn_dispersion(dispersion, negative, expected_negative, rate, config)
            window_dispersion = dict(window_dispersion)
            for window in windows:
                if window.expected >= 1.0:
                    learnt = window_dispersion.get(window.buckets, baseline.dispersion)
                    window_dispersion[window.buckets] = _learn_dispersion(
                        learnt, window.observed, window.expected, rate, config
                    )
    return Baseline(
        negative=(1 - alpha) * baseline.negative + alpha * negative / (factor * week),
        total=(1 - alpha) * baseline.total + alpha * total / (factor * week),
        dispersion=dispersion,
        window_dispersion=window_dispersion,
        daily=daily,
        buckets_seen=seen + 1,
    )


def _learn_dispersion(current: float, observed: float, expected: float, rate: float, config: DetectorConfig) -> float:
    """One EWMA step of the extra-Poisson variance from a count and its expectation (moment estimate)."""
    excess = ((observed - expected) ** 2 - expected) / expected**2
    return max(0.0, (1 - rate) * current + rate * min(excess, config.max_dispersion))


def window_dispersions(baseline: Baseline, config: DetectorConfig) -> dict[int, float]:
    """The spread of each look-back window's sum, with the same floors as :func:`effective_dispersion`.

    A window length with nothing learnt yet takes the per-bucket spread: what
    makes a long window surprising by accident may be an error shared by all
    its buckets, so until its own sums say otherwise it is not assumed smaller.
    """
    floor = _dispersion_floor(baseline, config)
    learnt = baseline.window_dispersion
    return {n: max(learnt.get(n, baseline.dispersion), floor) for n in config.window_lengths()}


def effective_dispersion(baseline: Baseline, config: DetectorConfig) -> float:
    """The spread the tests use: learnt, but never below ``min_dispersion``, and wide while history is short.

    A young baseline has not seen a whole day yet, so its rhythm is a guess:
    ``early_dispersion`` shrinks away as ``early_span`` of history accumulates.
    """
    return max(baseline.dispersion, _dispersion_floor(baseline, config))


def _dispersion_floor(baseline: Baseline, config: DetectorConfig) -> float:
    span = config.buckets(config.early_span)
    return max(config.min_dispersion, config.early_dispersion * span / (span + baseline.buckets_seen))


def calibrate(state: DetectorState, moment: datetime, windows: list[WindowScore], config: DetectorConfig) -> None:
    """Record each window's largest surprise of the day outside incidents in ``state`` (a copy the caller owns).

    The first bucket of a new day files the last day's maxima and refreshes the
    thresholds: every fast window's, and each day-scale horizon's that was
    scored that day (a horizon waits for its reference days). The calibration
    is replaced, never changed in place, so a state the caller kept is left as
    it was.
    """
    calibration = state.calibration
    day = moment.date()
    if calibration.day != day:
        daily, thresholds = calibration.daily_maxima, calibration.thresholds
        if calibration.day is not None:
            filed = {n: calibration.day_maxima.get(n, 0.0) for n in config.window_lengths()}
            filed |= {n: m for n, m in calibration.day_maxima.items() if n < 0}
            daily = dict(daily)
            for n, maximum in filed.items():
                daily[n] = [*daily.get(n, []), maximum][-config.calibration_days :]
            thresholds = {n: calibrated_threshold(maxima, config, n) for n, maxima in daily.items()}
        calibration = Calibration(day=day, daily_maxima=daily, thresholds=thresholds)
    if state.incident is None:
        recorded = calibration.day_maxima
        higher = {w.key: w.surprise for w in windows if w.key not in recorded or w.surprise > recorded[w.key]}
        if higher:
            calibration = calibration.model_copy(update={"day_maxima": {**calibration.day_maxima, **higher}})
    state.calibration = calibration


def calibrated_threshold(daily_maxima: list[float], config: DetectorConfig, key: int = 1) -> float:
    """The surprise an ordinary day of this brand exceeds once in ``calibration_return_days``, for one window.

    The count law is a model; real streams are burstier than it, in ways that
    differ by brand and by time scale (a brand whose chatter spikes for five
    minutes every afternoon may still hold a steady level hour to hour). So
    each window length is calibrated on its own history: the daily maxima of
    its surprise are fitted with a Gumbel law (the extreme-value law of daily
    maxima) on a log scale, since bursty streams have heavy-tailed surprises,
    with location and scale from the quartiles so one past incident does not
    move it. The threshold is never below ``open_surprise_floor``; until
    ``calibration_min_days`` are filed, it is ``open_surprise``. A day-scale
    horizon (``key`` is minus its hours) has its own floor,
    :meth:`DetectorConfig.horizon_floor`, which it also starts from.
    """
    floor = config.horizon_floor(-key) if key < 0 else config.open_surprise_floor
    if len(daily_maxima) < config.calibration_min_days:
        return floor if key < 0 else max(config.open_surprise, floor)
    logs = np.log1p(daily_maxima)
    low, middle, high = np.quantile(logs, [0.25, 0.5, 0.75])
    scale = max(float(high - low) / _GUMBEL_IQR, 1e-3)
    location = float(middle) + scale * math.log(math.log(2))
    level = gumbel_r.ppf(1 - 1 / config.calibration_return_days, location, scale)
    return max(floor, float(np.expm1(level)))


def open_thresholds(state: DetectorState, config: DetectorConfig) -> dict[int, float]:
    """The surprise that opens an incident through each window, before the sensitivity scaling.

    Fast windows are keyed by length in buckets, day-scale horizons by minus
    their hours. None is below its floor, even one calibrated under an
    older, lower floor.
    """
    thresholds = state.calibration.thresholds
    cold = max(config.open_surprise, config.open_surprise_floor)
    found = {n: max(thresholds.get(n, cold), config.open_surprise_floor) for n in config.window_lengths()}
    for hours in config.memory.horizons:
        floor = config.horizon_floor(hours)
        found[-hours] = max(thresholds.get(-hours, floor), floor)
    return found


def normal_levels(state: DetectorState, config: DetectorConfig, today: date) -> dict[int, float]:
    """Per window, the size of surge the team called normal: ``false_alarm_margin`` times the largest in a false alarm.

    A size is observed over expected mentions; no window whose surge is at
    most this size opens an incident, by any rule. A verdict counts for
    ``memory.memory_days`` after the day it was given.
    """
    levels: dict[int, float] = {}
    oldest = today - timedelta(days=config.memory.memory_days)
    for verdict in state.false_alarms:
        if verdict.day <= oldest:
            continue
        for key, level in verdict.levels.items():
            levels[key] = max(levels.get(key, 0.0), config.false_alarm_margin * level)
    return levels


def severity_for(window: WindowScore, threshold: float, reach: int, config: DetectorConfig) -> Severity:
    """Watch / warning / critical from the surprise (against the threshold), velocity and reach.

    Velocity is the window's negative rate against the normal one; reach is
    how many followers the negative posts' authors have between them.
    """
    velocity = window.observed / max(window.expected, 1e-9)
    if (window.surprise >= 3 * threshold and velocity >= 8) or reach >= config.critical_reach:
        return Severity.CRITICAL
    if window.surprise >= 2 * threshold or velocity >= 4 or reach >= config.warning_reach:
        return Severity.WARNING
    return Severity.WATCH


@dataclass(frozen=True)
class Alarm:
    """A window that opens an incident, the threshold it passed, and the rule in words."""

    window: WindowScore
    threshold: float
    rule: str


def horizon_scores(memory: HourlyMemory, end: datetime, config: DetectorConfig) -> list[WindowScore]:
    """Each day-scale horizon's surprise against the same hours of previous days (see :mod:`.memory`).

    Corrected for the number of horizons tried, as the fast windows are for
    theirs: the two families share the false-alarm budget. A horizon never
    expects less than ``floor_negative_per_hour`` an hour, as a bucket never
    does, so a brand that had no complaint in weeks is not alarmed by eight.
    """
    counts = horizon_counts(memory, end, config.memory.horizons)
    if not counts:
        return []
    correction = math.log10(len(config.memory.horizons))
    per_hour = config.buckets(HOUR)
    floored = [c._replace(expected=max(c.expected, config.floor_negative_per_hour * c.hours)) for c in counts]
    return [_horizon_score(c, correction, per_hour) for c in floored]


def _horizon_score(counts: HorizonCounts, correction: float, per_hour: int) -> WindowScore:
    surprise = share = 0.0
    if counts.observed > counts.expected:
        surprise = max(0.0, day_count_surprise(counts) - correction)
        if counts.observed_total > 0 and counts.expected_total > 0:
            observed_share = counts.observed / counts.observed_total
            normal_share = counts.expected / counts.expected_total
            share = day_share_surprise(observed_share, normal_share, counts.share_spread, counts.days)
            share = max(0.0, share - correction)
    return WindowScore(
        counts.hours * per_hour,
        counts.observed,
        counts.expected,
        surprise,
        counts.hours,
        counts.observed_total,
        counts.expected_total,
        counts.start,
        share,
    )


def day_count_surprise(counts: HorizonCounts) -> float:
    """``-log10 P(a day with at least this many negative mentions)`` for one horizon, from the days remembered.

    A day's count is Poisson around the median of the same hours of the
    previous days times a log-normal day multiplier, whose spread is what
    those days show beyond Poisson noise (widened by ``1 + 1/days`` for being
    estimated from them): exact at a handful of mentions, and with the heavy
    right tail of multiplicative day-to-day swings at thousands. The mixture's
    tail (Gauss-Hermite quadrature) is then read through Student's t with
    ``days - 1`` degrees of freedom, so few days of history make it cautious
    by themselves.
    """
    day_to_day = math.sqrt(counts.day_to_day * (1 + 1 / counts.days))
    means = max(counts.expected, 1e-9) * np.exp(day_to_day * _HERMITE_NODES)
    tail = float(np.dot(_HERMITE_WEIGHTS, special.pdtrc(counts.observed - 1, means)))
    return _through_t(tail, counts.days)


def day_share_surprise(observed: float, normal: float, spread: float, days: int) -> float:
    """``-log10 P(a day with at least this negative share)``: the log share against the previous days' spread.

    Student's t with ``days - 1`` degrees of freedom and the spread widened by
    ``1 + 1/days``, the predictive law for one more day when the spread itself
    is estimated from those days.
    """
    z = (math.log(observed + 1e-3) - math.log(normal + 1e-3)) / (spread * math.sqrt(1 + 1 / days))
    if z <= 0:
        return 0.0
    tail = special.stdtr(days - 1, -z)
    return surprise_of(tail)


def _through_t(tail: float, days: int) -> float:
    """A normal tail probability re-read through Student's t with ``days - 1`` degrees of freedom, as a surprise."""
    if tail >= 0.5:
        return 0.0
    z = -float(special.ndtri(max(tail, 1e-300)))
    heavier = special.stdtr(days - 1, -z)
    return surprise_of(heavier)


def alarm(
    recent: list[RecentBucket],
    windows: list[WindowScore],
    thresholds: dict[int, float],
    config: DetectorConfig,
    called_normal: Mapping[int, float] | None = None,
) -> Alarm | None:
    """The window that most clearly calls for an incident, if any.

    A window with at least ``min_negative`` mentions alarms by count when its
    surprise reaches its (calibrated, sensitivity-scaled) threshold, or by
    count and share when the count reaches half of it and the negative share
    of all mentions, judged against the brand's usual mix, is surprising too:
    the same number of complaints means more when the rest of the talk did
    not grow with them. On a fast window (threshold at least
    ``open_surprise_floor``) the share must reach the other half, each half a
    strong statement by itself; on a day-scale horizon, whose threshold is a
    few units, half would be no evidence at all, so the share, judged against
    the previous days' shares, must reach the whole threshold. A window whose
    count is no more surprising than a surge the team ``called_normal`` (see
    :func:`normal_levels`) does not alarm by either rule.
    """
    found: list[Alarm] = []
    for window in windows:
        limit = config.scaled(thresholds[window.key])
        if window.observed < config.min_negative or window.surprise < limit / 2:
            continue
        if called_normal and window.observed <= called_normal.get(window.key, 0.0) * window.expected:
            continue
        if window.surprise >= limit:
            found.append(Alarm(window, limit, _describe(window, limit, config)))
            continue
        total, expected_total = window_totals(recent, window)
        normal = window.expected / max(expected_total, 1e-9)
        shift = window.share_surprise if window.hours else share_surprise(window.observed, total, normal)
        needed = limit if window.hours else limit / 2
        if shift >= needed:
            rule = (
                _describe(window, limit / 2, config)
                + f" (half the threshold) with {window.observed / total:.0%} of {total} mentions negative vs "
                f"{min(normal, 1.0):.0%} normal: share surprise {shift:.1f} >= {needed:.1f}"
            )
            found.append(Alarm(window, limit / 2, rule))
    return max(found, key=lambda a: a.window.surprise / a.threshold, default=None)


def learning_alarm(state: DetectorState, config: DetectorConfig) -> Alarm | None:
    """While a brand is learning, only extreme volume alerts: ``learning_alert_negative`` in ``learning_alert_window``.

    Its baseline is a guess before a day is seen, so its surprise is not
    trusted on its own: the count must also be extreme in absolute terms, and
    still surprising (``learning_alert_surprise``) under the wide spread of a
    young baseline, so a brand that is simply busy does not alert on its first day.
    Nothing alerts during the first ``warmup``, when there is no baseline at all.
    """
    window = learning_window(state, config)
    needed = config.scaled(config.learning_alert_surprise)
    if window.observed < config.learning_alert_negative or window.surprise < needed:
        return None
    observed, minutes = window.observed, round(window.buckets * config.bucket / MINUTE)
    rule = (
        f"{observed} negative mentions in the last {minutes} min while the brand is still learning what is normal "
        f"(at least {config.learning_alert_negative} in {minutes} min alert before a day of history)"
    )
    return Alarm(window, needed, rule)


def learning_window(state: DetectorState, config: DetectorConfig) -> WindowScore:
    """The last ``learning_alert_window`` judged as the learning rule judges it: with a young baseline's spread."""
    buckets = state.recent[-config.buckets(config.learning_alert_window) :]
    observed = sum(b.negative for b in buckets)
    expected = sum(b.expected_negative for b in buckets)
    return WindowScore(len(buckets), observed, expected, tail_surprise(observed, expected, config.early_dispersion))


def window_totals(recent: list[RecentBucket], window: WindowScore) -> tuple[int, float]:
    """All mentions in the window and how many were expected."""
    if window.hours:
        return window.observed_total, window.expected_total
    buckets = recent[-window.buckets :]
    return sum(b.total for b in buckets), sum(b.expected_total for b in buckets)


def window_reach(recent: list[RecentBucket], window: WindowScore) -> int:
    """Followers of the negative posts' authors in the window (a horizon: in the recent buckets kept), summed."""
    return sum(b.reach for b in recent[-window.buckets :])


def _merge_samples(*groups: list[SampleMention]) -> list[SampleMention]:
    seen: dict[str, SampleMention] = {}
    for group in groups:
        for sample in group:
            seen.setdefault(sample.id, sample)
    ranked = sorted(seen.values(), key=lambda s: sample_rank(s.negative_score, s.author_followers), reverse=True)
    return ranked[:5]


def _decision(
    state: DetectorState,
    event: IncidentEventType,
    window: WindowScore,
    rule: str,
    config: DetectorConfig,
    acted_by: str | None = None,
    false_alarm: bool = False,
) -> Decision:
    incident = state.incident
    if incident is None:
        raise ValueError("a decision needs an incident")
    buckets = state.recent[-window.buckets :]
    total, expected_total = window_totals(state.recent, window)
    start = window.start if window.start is not None else buckets[0].start
    return Decision(
        event=event,
        incident_id=incident.incident_id,
        revision=incident.revision,
        brand=state.brand,
        severity=incident.severity,
        window_start=start,
        window_end=buckets[-1].start + config.bucket,
        opened_at=incident.opened_at,
        observed_negative=window.observed,
        expected_negative=round(window.expected, 3),
        observed_total=total,
        expected_total=round(expected_total, 3),
        negative_share=round(min(1.0, window.observed / total), 4) if total else 0.0,
        baseline_negative_share=round(min(1.0, window.expected / expected_total), 4) if expected_total else 0.0,
        surprise=round(window.surprise, 2),
        reach=sum(b.reach for b in buckets),
        rule=rule,
        samples=tuple(incident.samples),
        peak_negative=incident.peak_negative,
        total_negative=incident.total_negative,
        history=history_points(state.recent, effective_dispersion(state.baseline, config), config),
        acknowledged_by=incident.acknowledged_by,
        assignee=incident.assignee,
        snoozed_until=incident.snoozed_until,
        acted_by=acted_by,
        brand_name=state.brand_name,
        false_alarm=false_alarm,
        horizon=horizon_words(window, config),
    )


def horizon_words(window: WindowScore, config: DetectorConfig) -> str:
    """The look-back a window covers, as a service lead says it: ``last 15 min``, ``last 12 h``."""
    if window.hours:
        return f"last {window.hours} h"
    minutes = round(window.buckets * config.bucket / MINUTE)
    return f"last {minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"last {minutes} min"


def _describe(window: WindowScore, threshold: float, config: DetectorConfig) -> str:
    if window.hours and window.start is not None:
        ratio = window.observed / max(window.expected, 1e-9)
        when = part_of_day(window.start + HOUR * window.hours)
        return (
            f"Negative mentions over the last {window.hours} h: {window.observed} vs {window.expected:.0f} normal "
            f"for a {when} ({ratio:.1f}x): surprise {window.surprise:.1f} >= {threshold:.1f}"
        )
    minutes = round(window.buckets * config.bucket / MINUTE)
    return (
        f"{window.observed} negative mentions in the last {minutes} min vs {window.expected:.1f} expected: "
        f"surprise {window.surprise:.1f} >= {threshold:.1f}"
    )


def still_rising(window: WindowScore, windows: Sequence[WindowScore]) -> bool:
    """Whether the rise a day-scale horizon sees is still under way, not a storm already over.

    The shortest horizon (the last few hours) must run at least half the
    horizon's excess rate: a storm that ended this morning fills the 24-hour
    sum until tomorrow, but not the last three hours.
    """
    recent = min((w for w in windows if w.hours), key=lambda w: w.hours)
    if recent.hours >= window.hours:
        return True
    excess = window.observed / max(window.expected, 1e-9) - 1
    return recent.observed / max(recent.expected, 1e-9) >= 1 + excess / 2


def _size(window: WindowScore) -> float:
    """How large a window's surge is: observed over expected negative mentions."""
    return window.observed / max(window.expected, 1e-9)


def _open(
    state: DetectorState, found: Alarm, end: datetime, config: DetectorConfig, windows: Sequence[WindowScore] = ()
) -> Decision:
    """Open an incident in ``state`` (a copy the caller owns) for ``found``; returns the OPENED event.

    The incident remembers how large the surge was in every window
    (``windows``), so a "not a crisis" verdict covers each window, not only
    the one that fired.
    """
    best = found.window
    window = state.recent[-best.buckets :]
    state.incidents_opened += 1
    state.incident = OpenIncident(
        incident_id=f"{state.brand}-{end:%Y%m%dT%H%M}",
        revision=1,
        opened_at=end,
        severity=severity_for(best, found.threshold, window_reach(state.recent, best), config),
        peak_negative=max(b.negative for b in window),
        total_negative=best.observed,
        samples=_merge_samples(*(b.samples for b in window)),
        horizon_hours=best.hours,
        peak_size={w.key: _size(w) for w in [*windows, best]},
    )
    return _decision(state, IncidentEventType.OPENED, best, found.rule, config)


def step(state: DetectorState, bucket: Bucket, config: DetectorConfig) -> tuple[DetectorState, list[Decision]]:
    """Advance one brand by one closed bucket; returns the new state and any incident events."""
    state = state.model_copy(
        update={"recent": list(state.recent), "incident": state.incident.model_copy() if state.incident else None}
    )
    state.memory = memory = remember(
        derived(state.memory, config.memory), bucket.start, bucket.negative, bucket.total, config.memory
    )
    weekly = memory.weekly
    expected_negative, expected_total = expected_counts(state.baseline, config, bucket.start, weekly)
    lengths = config.window_lengths()
    previous = state.recent[-1] if state.recent else None
    state.recent.append(
        RecentBucket(
            start=bucket.start,
            negative=bucket.negative,
            total=bucket.total,
            expected_negative=expected_negative,
            expected_total=expected_total,
            reach=bucket.reach_negative,
            samples=bucket.samples,
            running_negative=(previous.running_negative if previous else 0) + bucket.negative,
            running_expected=(previous.running_expected if previous else 0.0) + expected_negative,
        )
    )
    del state.recent[: -max(lengths)]
    aged = len(state.recent) - config.buckets(config.sample_span) - 1
    if aged >= 0 and state.recent[aged].samples:
        state.recent[aged] = state.recent[aged].without_samples()
    end = bucket.start + config.bucket
    cooling = state.cooldown_until is not None and bucket.start < state.cooldown_until

    if state.incident is None and state.baseline.buckets_seen < config.buckets(config.warmup):
        state.baseline = updated_baseline(state.baseline, bucket, config, weekly=weekly)
        return state, []

    dispersions = window_dispersions(state.baseline, config)
    fast = window_scores(state.recent, dispersions, lengths)
    windows = fast + horizon_scores(memory, end, config)
    calibrate(state, bucket.start, windows, config)
    if state.incident is None:
        if state.learning(config):
            found = learning_alarm(state, config)
        else:
            called_normal = normal_levels(state, config, bucket.start.date())
            found = alarm(state.recent, windows, open_thresholds(state, config), config, called_normal)
            if found is not None and found.window.hours and not still_rising(found.window, windows):
                found = None
            if found is not None and not found.window.hours and bucket.negative <= expected_negative:
                found = None
        if found is not None and not cooling:
            return state, [_open(state, found, end, config, windows)]
        calm = most_surprising(fast).surprise < config.scaled(config.hot_surprise)
        state.baseline = updated_baseline(state.baseline, bucket, config, calm=calm, windows=fast, weekly=weekly)
        return state, []

    decisions: list[Decision] = []
    incident = state.incident
    incident.total_negative += bucket.negative
    incident.peak_negative = max(incident.peak_negative, bucket.negative)
    incident.samples = _merge_samples(incident.samples, bucket.samples)
    peaks = incident.peak_size
    larger = {w.key: size for w in windows if (size := _size(w)) > peaks.get(w.key, 0.0)}
    if larger:
        incident.peak_size = {**peaks, **larger}
    resolve_lengths = tuple(n for n in lengths if n <= config.buckets(config.resolve_window)) or lengths[:1]
    short = scan(state.recent, dispersions, resolve_lengths)
    if incident.horizon_hours:
        shortest = min((w for w in windows if w.hours), key=lambda w: w.hours, default=None)
        if shortest is not None and shortest.surprise > short.surprise:
            short = shortest
    if short.surprise < config.scaled(config.resolve_surprise):
        incident.quiet_buckets += 1
    elif windows:
        incident.quiet_buckets = 0
        thresholds = open_thresholds(state, config)
        loudest = max(windows, key=lambda w: w.surprise / thresholds[w.key])
        threshold = config.scaled(thresholds[loudest.key])
        severity = severity_for(loudest, threshold, window_reach(state.recent, loudest), config)
        settled = end - (incident.alerted_at or incident.opened_at) >= config.escalation_gap
        if severity.rank > incident.severity.rank and settled:
            incident.severity = severity
            incident.alerted_at = end
            incident.revision += 1
            rule = f"severity rose to {severity.value}: " + _describe(loudest, threshold, config)
            decisions.append(_decision(state, IncidentEventType.ESCALATED, loudest, rule, config))
    if incident.quiet_buckets >= config.buckets(config.resolve_quiet):
        incident.revision += 1
        quiet_minutes = round(incident.quiet_buckets * config.bucket / MINUTE)
        rule = f"{quiet_minutes} min without surprise above {config.scaled(config.resolve_surprise):.1f}"
        decisions.append(_decision(state, IncidentEventType.RESOLVED, short, rule, config))
        state.incident = None
        state.cooldown_until = end + config.cooldown
    state.baseline = updated_baseline(state.baseline, bucket, config, during_incident=True, weekly=weekly)
    return state, decisions


def judge(
    state: DetectorState, closed: list[Bucket], config: DetectorConfig
) -> tuple[DetectorState, list[BucketVerdict]]:
    """Step a brand through its newly closed buckets in order: the one entry point of the live alerter and backtests."""
    verdicts: list[BucketVerdict] = []
    for bucket in closed:
        own = score(state.baseline, bucket, config, state.memory.weekly)
        dispersion = effective_dispersion(state.baseline, config)
        learning = state.learning(config)
        state, decisions = step(state, bucket, config)
        verdicts.append(BucketVerdict(bucket, own, dispersion, decisions, learning))
    return state, verdicts


def warm_start(state: DetectorState) -> DetectorState:
    """A brand's state learnt from its recorded history, ready to go on live: what is normal, no open incident.

    The baseline, the hourly memory, the calibration and any false-alarm
    verdicts carry over; an incident or cooldown from the history does not,
    and neither do the recent buckets, which the live stream refills (its
    first bucket need not follow the history's last).
    """
    return state.model_copy(update={"incident": None, "cooldown_until": None, "recent": []})


class ActionOutcome(enum.StrEnum):
    """What a person's action did to the brand's state."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    STALE = "stale"


def apply_action(
    state: DetectorState, action: IncidentAction, config: DetectorConfig
) -> tuple[DetectorState, ActionOutcome, list[Decision]]:
    """Apply a person's action to the brand's open incident; returns the new state, the outcome and any event.

    An action on an incident that is no longer open is ``STALE``; one that
    would change nothing (the same person acknowledging twice, a redelivered
    snooze) is ``UNCHANGED``, so applying an action twice is harmless. A
    snooze keeps escalations from interrupting anyone until it ends; a manual
    resolution closes the incident and starts the cooldown as if it had calmed.
    "Not a crisis" resolves it as a false alarm and teaches the brand that a
    surge of this size is normal: for ``memory.memory_days`` no window opens
    an incident unless its surge (observed over expected) is more than
    ``false_alarm_margin`` times the largest that window saw in this
    incident, so a repeat of the same size stays quiet while a clearly larger
    one still alerts.
    """
    incident = state.incident
    if incident is None or incident.incident_id != action.incident_id:
        return state, ActionOutcome.STALE, []
    state = state.model_copy(update={"incident": incident.model_copy()})
    incident = state.incident
    assert incident is not None
    if action.kind is ActionKind.ACKNOWLEDGE:
        if incident.acknowledged_by is not None:
            return state, ActionOutcome.UNCHANGED, []
        incident.acknowledged_by = action.user_id
        event = IncidentEventType.ACKNOWLEDGED
    elif action.kind is ActionKind.ASSIGN:
        if incident.assignee == action.user_id:
            return state, ActionOutcome.UNCHANGED, []
        incident.assignee = action.user_id
        event = IncidentEventType.ASSIGNED
    elif action.kind is ActionKind.SNOOZE:
        until = action.acted_at + timedelta(minutes=action.snooze_minutes)
        if incident.snoozed_until is not None and incident.snoozed_until >= until:
            return state, ActionOutcome.UNCHANGED, []
        incident.snoozed_until = until
        event = IncidentEventType.SNOOZED
    else:
        event = IncidentEventType.RESOLVED
    incident.revision += 1
    window = scan(state.recent, window_dispersions(state.baseline, config), config.window_lengths())
    minutes = round(window.buckets * config.bucket / MINUTE)
    rule = (
        f"{action.kind.value} by a person; now {window.observed} negative mentions in the last {minutes} min "
        f"vs {window.expected:.1f} expected (surprise {window.surprise:.1f})"
    )
    false_alarm = action.kind is ActionKind.NOT_A_CRISIS
    decision = _decision(state, event, window, rule, config, acted_by=action.user_id, false_alarm=false_alarm)
    if false_alarm:
        oldest = action.acted_at.date() - timedelta(days=config.memory.memory_days)
        kept = [verdict for verdict in state.false_alarms if verdict.day > oldest]
        state.false_alarms = [*kept, FalseAlarm(day=action.acted_at.date(), levels=dict(incident.peak_size))]
    if event is IncidentEventType.RESOLVED:
        last_end = state.recent[-1].start + config.bucket if state.recent else action.acted_at
        state.incident = None
        state.cooldown_until = max(action.acted_at, last_end) + config.cooldown
    return state, ActionOutcome.APPLIED, [decision]


def history_points(
    recent: list[RecentBucket], dispersion: float, config: DetectorConfig, most: int = HISTORY_POINTS
) -> tuple[HistoryPoint, ...]:
    """The brand's recent buckets merged into at most ``most`` intervals, with each interval's normal range."""
    group = max(1, math.ceil(len(recent) / most))
    chunks = [recent[first : first + group] for first in range(0, len(recent), group)]
    expected = [sum(b.expected_negative for b in chunk) for chunk in chunks]
    bands = expected_bands(expected, dispersion)
    return tuple(
        HistoryPoint(
            start=chunk[0].start,
            total=sum(b.total for b in chunk),
            negative=sum(b.negative for b in chunk),
            expected_negative=round(mean, 3),
            normal_low=low,
            normal_high=high,
        )
        for chunk, mean, (low, high) in zip(chunks, expected, bands, strict=True)
    )


def expected_bands(
    expected: Sequence[float], dispersion: float | Sequence[float], coverage: float = 0.95
) -> list[tuple[int, int]]:
    """The central ``coverage`` interval of the count law around each expected count (for charts of what is normal).

    One vectorised quantile call for all of them: an alert carries dozens of
    points, and a frozen distribution per point costs milliseconds each.
    """
    mean = np.asarray(expected, dtype=float)
    spread = np.broadcast_to(np.asarray(dispersion, dtype=float), mean.shape)
    if mean.size == 0:
        return []
    tails = np.array([(1 - coverage) / 2, 1 - (1 - coverage) / 2])[:, None]
    positive_mean = np.maximum(mean, 1e-12)
    size = 1 / np.maximum(spread, 1e-12)
    with np.errstate(all="ignore"):
        bounds = np.where(
            spread > 0, nbinom.ppf(tails, size, size / (size + positive_mean)), poisson.ppf(tails, positive_mean)
        )
    bounds = np.where(mean > 0, bounds, 0)
    return [(int(low), int(high)) for low, high in bounds.T]


def expected_band(expected: float, dispersion: float, coverage: float = 0.95) -> tuple[int, int]:
    """The central ``coverage`` interval of the count law around one expected count."""
    return expected_bands([expected], dispersion, coverage)[0]
