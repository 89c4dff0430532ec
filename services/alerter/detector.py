"""The crisis detector (pure and deterministic): closed buckets in, incident decisions out.

Negative mentions are counts, so they are judged as counts. Each brand has a
baseline that learns its level, its rhythm over the day and its spread; the
expected count of a bucket is the level times the hour-of-day factor, and the
spread is negative binomial (variance ``mu + dispersion * mu**2``), which is
Poisson for a well-behaved brand and holds at a fraction of a mention per
bucket and at hundreds.

Every closed bucket (one minute by default) ends several look-back windows,
from two minutes to four hours: a sudden storm shows in a few buckets, a slow
burn over hours. For each window the surprise is ``-log10 P(X >= observed)``
of its summed count under the baseline, less the ``log10`` of the number of
windows tried (a Bonferroni correction), and the most surprising window
speaks. An incident opens when that surprise clears the brand's threshold
with at least ``min_negative`` mentions while the latest bucket is still above
normal; no window is shorter than ``confirm_buckets``, so the evidence always
spans several buckets. The threshold is ``open_surprise`` for a new brand and,
once a few days are seen, twice what the brand's ordinary days reach (never
below ``open_surprise_floor``): a brand whose chatter bursts every afternoon
needs a bigger surge than one that follows the count law. The baseline's
rhythm and spread are frozen while a brand is hot, so neither a spike nor a
slow burn teaches it that storms are normal; the incident resolves only after
``resolve_quiet`` without surprise (hysteresis), and the brand cannot re-open
within ``cooldown``. Escalation to a higher severity is the only re-alert.
People act on an open incident through :func:`apply_action` (acknowledge,
assign, snooze, resolve); each change is an incident event of its own.
The same code runs in the live alerter and in offline backtests.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median

from pydantic import BaseModel, Field
from scipy import special
from scipy.stats import nbinom, poisson

from crisiswatch.contracts.schemas import (
    ActionKind,
    HistoryPoint,
    Incident,
    IncidentAction,
    IncidentEventType,
    SampleMention,
    Severity,
)

from .windows import Bucket, sample_rank

HOURS = 24
MINUTE = timedelta(minutes=1)
MAX_SURPRISE = 300.0
HISTORY_POINTS = 60


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
    baseline_halflife: timedelta = timedelta(hours=12)
    seasonal_halflife_days: float = 2.0
    dispersion_halflife: timedelta = timedelta(days=1)
    max_dispersion: float = 2.0
    min_dispersion: float = 0.02
    early_dispersion: float = 0.25
    early_span: timedelta = timedelta(days=1)
    floor_negative_per_hour: float = 0.6
    winsor_sigmas: float = 3.0
    hot_surprise: float = 3.0
    open_surprise: float = 8.0
    open_surprise_floor: float = 6.0
    calibration_days: int = 14
    calibration_min_days: int = 3
    calibration_factor: float = 2.0
    min_negative: int = 8
    confirm_buckets: int = 2
    resolve_surprise: float = 1.3
    resolve_window: timedelta = timedelta(minutes=15)
    resolve_quiet: timedelta = timedelta(minutes=15)
    cooldown: timedelta = timedelta(hours=12)
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

    def per_bucket(self, per_hour: float) -> float:
        """A per-hour rate expressed per bucket."""
        return per_hour * (self.bucket / timedelta(hours=1))


@functools.cache
def _buckets_in(span: timedelta, bucket: timedelta) -> int:
    return max(1, round(span / bucket))


@functools.cache
def _window_lengths(windows: tuple[timedelta, ...], bucket: timedelta, confirm: int) -> tuple[int, ...]:
    return tuple(sorted({max(_buckets_in(w, bucket), confirm) for w in windows}))


class Baseline(BaseModel):
    """What is normal for a brand: levels per bucket, their rhythm over the day, and their spread.

    ``negative`` and ``total`` are de-seasonalised levels; ``daily`` holds one
    multiplier per hour of the day (mean 1); ``dispersion`` is the extra-Poisson
    variance of negative counts (variance = mu + dispersion * mu^2).
    """

    negative: float
    total: float
    dispersion: float = 0.0
    daily: list[float] = Field(default_factory=lambda: [1.0] * HOURS)
    buckets_seen: int = 0


class RecentBucket(BaseModel):
    """A closed bucket as the look-back windows need it: counts, what was expected, evidence.

    ``running_negative`` and ``running_expected`` are totals up to and including
    this bucket, so any window's sums are one subtraction (the scan runs for
    every brand every bucket, over windows of up to hundreds of buckets).
    """

    start: datetime
    negative: int
    total: int
    expected_negative: float
    expected_total: float
    reach: int
    samples: list[SampleMention] = Field(default_factory=list)
    running_negative: int = 0
    running_expected: float = 0.0


class OpenIncident(BaseModel):
    """The incident a brand is in, if any."""

    incident_id: str
    revision: int
    opened_at: datetime
    severity: Severity
    peak_negative: int
    total_negative: int
    quiet_buckets: int = 0
    samples: list[SampleMention] = Field(default_factory=list)
    acknowledged_by: str | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None


class DetectorState(BaseModel):
    """Everything the detector remembers about one brand (JSON-serialisable for a changelogged table)."""

    brand: str
    brand_name: str = ""
    baseline: Baseline
    recent: list[RecentBucket] = Field(default_factory=list)
    incident: OpenIncident | None = None
    cooldown_until: datetime | None = None
    incidents_opened: int = 0
    calibration_day: date | None = None
    day_max_surprise: float = 0.0
    daily_max_surprises: list[float] = Field(default_factory=list)

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


@dataclass(frozen=True)
class BucketScore:
    """How unusual one bucket is for the brand on its own."""

    expected_negative: float
    expected_total: float
    surprise: float


@dataclass(frozen=True)
class WindowScore:
    """The most surprising look-back window ending at the latest bucket."""

    buckets: int
    observed: int
    expected: float
    surprise: float


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

    def incident(self) -> Incident:
        """The wire event for this decision."""
        fields = {k: v for k, v in vars(self).items() if k not in ("samples", "history")}
        return Incident(**fields, sample_mentions=list(self.samples), history=list(self.history))


@dataclass(frozen=True)
class BucketVerdict:
    """One closed bucket as the detector judged it: its score, the spread it assumed, and any events."""

    bucket: Bucket
    score: BucketScore
    dispersion: float
    decisions: list[Decision]


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
    return min(MAX_SURPRISE, float(-math.log10(tail))) if tail > 0 else MAX_SURPRISE


def expected_counts(baseline: Baseline, config: DetectorConfig, moment: datetime) -> tuple[float, float]:
    """Expected negative and total mentions in the bucket starting at ``moment``."""
    factor = baseline.daily[moment.hour]
    floor = config.per_bucket(config.floor_negative_per_hour)
    return max(baseline.negative * factor, floor), max(baseline.total * factor, 1e-3)


def score(baseline: Baseline, bucket: Bucket, config: DetectorConfig) -> BucketScore:
    """The bucket's expected counts and its own surprise."""
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start)
    surprise = tail_surprise(bucket.negative, expected_negative, baseline.dispersion)
    return BucketScore(expected_negative, expected_total, surprise)


def scan(recent: list[RecentBucket], dispersion: float, lengths: tuple[int, ...]) -> WindowScore:
    """The most surprising window among those of ``lengths`` buckets ending at the latest bucket.

    The dispersion is not divided by the window length: what makes a long
    window surprising by accident is a baseline that is off for a while, an
    error shared by all its buckets. The surprise is corrected for the number
    of windows tried.
    """
    best = WindowScore(1, 0, 0.0, 0.0)
    if not recent or not lengths:
        return best
    correction = math.log10(len(lengths))
    last, first = recent[-1], recent[0]
    for n in lengths:
        if n > len(recent):
            break
        before = recent[-n - 1] if n < len(recent) else None
        observed = last.running_negative - (
            before.running_negative if before else first.running_negative - first.negative
        )
        expected = max(
            0.0,
            last.running_expected
            - (before.running_expected if before else first.running_expected - first.expected_negative),
        )
        surprise = max(0.0, tail_surprise(observed, expected, dispersion) - correction)
        if surprise > best.surprise:
            best = WindowScore(n, observed, expected, surprise)
    return best


def updated_baseline(baseline: Baseline, bucket: Bucket, config: DetectorConfig, calm: bool = True) -> Baseline:
    """Fold a normal bucket into the baseline: level, hour-of-day rhythm and spread.

    While history is short the levels are running means of what was seen, with
    the prior counting as ``prior_pseudo_buckets`` observations; after the
    warm-up they are EWMAs of buckets clipped to ``winsor_sigmas`` standard
    deviations above expectation, so no single bucket drags the baseline up.
    The rhythm and the spread are learnt only while the look-back windows are
    unsurprising (``calm``), so a slow burn is not mistaken for the time of
    day and a surge is never explained away as noise. Each bucket's evidence
    about the rhythm is shrunk by one pseudo-count, ``(n + 1) / (mu + 1)``: still
    unbiased for Poisson counts, but a single post in a quiet bucket no longer
    reads as a five-fold rise.
    """
    seen = baseline.buckets_seen
    warm = seen >= config.buckets(config.warmup)
    alpha = max(1 - 0.5 ** (config.bucket / config.baseline_halflife), 1 / (seen + 1 + config.prior_pseudo_buckets))
    hour = bucket.start.hour
    factor = baseline.daily[hour]
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start)
    negative, total = float(bucket.negative), float(bucket.total)
    if warm:
        spread = math.sqrt(expected_negative + baseline.dispersion * expected_negative**2)
        negative = min(negative, expected_negative + config.winsor_sigmas * spread)
        total_spread = math.sqrt(expected_total + baseline.dispersion * expected_total**2)
        total = min(total, expected_total + config.winsor_sigmas * total_spread)
    daily = list(baseline.daily)
    dispersion = baseline.dispersion
    if warm:
        if calm and baseline.negative > 0:
            updates_per_slot = config.seasonal_halflife_days * (timedelta(hours=1) / config.bucket)
            rate = 1 - 0.5 ** (1 / updates_per_slot)
            observed_factor = min(max((negative + 1) / (baseline.negative + 1), 0.2), 5.0)
            daily[hour] = (1 - rate) * factor + rate * observed_factor
            mean = sum(daily) / HOURS
            daily = [f / mean for f in daily]
        if calm and expected_negative >= 1.0:
            excess = ((negative - expected_negative) ** 2 - expected_negative) / expected_negative**2
            rate = 1 - 0.5 ** (config.bucket / config.dispersion_halflife)
            dispersion = max(0.0, (1 - rate) * dispersion + rate * min(excess, config.max_dispersion))
    return Baseline(
        negative=(1 - alpha) * baseline.negative + alpha * negative / factor,
        total=(1 - alpha) * baseline.total + alpha * total / factor,
        dispersion=dispersion,
        daily=daily,
        buckets_seen=seen + 1,
    )


def effective_dispersion(baseline: Baseline, config: DetectorConfig) -> float:
    """The spread the tests use: learnt, but never below ``min_dispersion``, and wide while history is short.

    A young baseline has not seen a whole day yet, so its rhythm is a guess:
    ``early_dispersion`` shrinks away as ``early_span`` of history accumulates.
    """
    span = config.buckets(config.early_span)
    early = config.early_dispersion * span / (span + baseline.buckets_seen)
    return max(baseline.dispersion, config.min_dispersion, early)


def calibrate(state: DetectorState, moment: datetime, surprise: float, config: DetectorConfig) -> None:
    """Record the day's largest surprise outside incidents (mutates ``state``); a new day files the last one."""
    day = moment.date()
    if state.calibration_day != day:
        if state.calibration_day is not None:
            state.daily_max_surprises = [*state.daily_max_surprises, state.day_max_surprise][-config.calibration_days :]
        state.calibration_day, state.day_max_surprise = day, 0.0
    if state.incident is None:
        state.day_max_surprise = max(state.day_max_surprise, surprise)


def open_threshold(state: DetectorState, config: DetectorConfig) -> float:
    """The surprise that opens an incident for this brand, before the sensitivity scaling.

    The count law is a model; real streams are burstier than it in ways that
    differ by brand. So once a brand has ``calibration_min_days`` of history,
    an incident needs a surprise ``calibration_factor`` times the brand's
    median daily maximum (what its ordinary days reach), and never less than
    ``open_surprise_floor``. Until then ``open_surprise`` applies.
    """
    history = state.daily_max_surprises
    if len(history) < config.calibration_min_days:
        return config.open_surprise
    return max(config.open_surprise_floor, config.calibration_factor * median(history))


def severity_for(window: WindowScore, config: DetectorConfig) -> Severity:
    """Watch / warning / critical from how surprising and how large the surge is."""
    ratio = window.observed / max(window.expected, 1e-9)
    if window.surprise >= config.scaled(3 * config.open_surprise) and ratio >= 8:
        return Severity.CRITICAL
    if window.surprise >= config.scaled(2 * config.open_surprise) or ratio >= 4:
        return Severity.WARNING
    return Severity.WATCH


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
) -> Decision:
    incident = state.incident
    if incident is None:
        raise ValueError("a decision needs an incident")
    buckets = state.recent[-window.buckets :]
    total = sum(b.total for b in buckets)
    expected_total = sum(b.expected_total for b in buckets)
    return Decision(
        event=event,
        incident_id=incident.incident_id,
        revision=incident.revision,
        brand=state.brand,
        severity=incident.severity,
        window_start=buckets[0].start,
        window_end=buckets[-1].start + config.bucket,
        opened_at=incident.opened_at,
        observed_negative=window.observed,
        expected_negative=round(window.expected, 3),
        observed_total=total,
        expected_total=round(expected_total, 3),
        negative_share=round(window.observed / total, 4) if total else 0.0,
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
    )


def _describe(window: WindowScore, threshold: float, config: DetectorConfig) -> str:
    minutes = round(window.buckets * config.bucket / MINUTE)
    return (
        f"{window.observed} negative mentions in the last {minutes} min vs {window.expected:.1f} expected: "
        f"surprise {window.surprise:.1f} >= {threshold:.1f}"
    )


def step(state: DetectorState, bucket: Bucket, config: DetectorConfig) -> tuple[DetectorState, list[Decision]]:
    """Advance one brand by one closed bucket; returns the new state and any incident events."""
    state = state.model_copy(
        update={"recent": list(state.recent), "incident": state.incident.model_copy() if state.incident else None}
    )
    own = score(state.baseline, bucket, config)
    lengths = config.window_lengths()
    previous = state.recent[-1] if state.recent else None
    state.recent.append(
        RecentBucket(
            start=bucket.start,
            negative=bucket.negative,
            total=bucket.total,
            expected_negative=own.expected_negative,
            expected_total=own.expected_total,
            reach=bucket.reach_negative,
            samples=bucket.samples,
            running_negative=(previous.running_negative if previous else 0) + bucket.negative,
            running_expected=(previous.running_expected if previous else 0.0) + own.expected_negative,
        )
    )
    del state.recent[: -max(lengths)]
    aged = len(state.recent) - config.buckets(config.sample_span) - 1
    if aged >= 0 and state.recent[aged].samples:
        state.recent[aged] = state.recent[aged].model_copy(update={"samples": []})
    end = bucket.start + config.bucket
    decisions: list[Decision] = []

    if state.incident is None and state.baseline.buckets_seen < config.buckets(config.warmup):
        state.baseline = updated_baseline(state.baseline, bucket, config)
        return state, decisions

    dispersion = effective_dispersion(state.baseline, config)
    best = scan(state.recent, dispersion, lengths)
    calibrate(state, bucket.start, best.surprise, config)
    if state.incident is None:
        cooling = state.cooldown_until is not None and bucket.start < state.cooldown_until
        threshold = config.scaled(open_threshold(state, config))
        elevated = bucket.negative > own.expected_negative
        if best.surprise >= threshold and best.observed >= config.min_negative and elevated and not cooling:
            window = state.recent[-best.buckets :]
            state.incidents_opened += 1
            state.incident = OpenIncident(
                incident_id=f"{state.brand}-{window[0].start:%Y%m%dT%H%M}",
                revision=1,
                opened_at=end,
                severity=severity_for(best, config),
                peak_negative=max(b.negative for b in window),
                total_negative=best.observed,
                samples=_merge_samples(*(b.samples for b in window)),
            )
            decisions.append(
                _decision(state, IncidentEventType.OPENED, best, _describe(best, threshold, config), config)
            )
        else:
            calm = best.surprise < config.scaled(config.hot_surprise)
            state.baseline = updated_baseline(state.baseline, bucket, config, calm=calm)
        return state, decisions

    incident = state.incident
    incident.total_negative += bucket.negative
    incident.peak_negative = max(incident.peak_negative, bucket.negative)
    incident.samples = _merge_samples(incident.samples, bucket.samples)
    resolve_lengths = tuple(n for n in lengths if n <= config.buckets(config.resolve_window)) or lengths[:1]
    short = scan(state.recent, dispersion, resolve_lengths)
    if short.surprise < config.scaled(config.resolve_surprise):
        incident.quiet_buckets += 1
    else:
        incident.quiet_buckets = 0
        severity = severity_for(best, config)
        if severity.rank > incident.severity.rank:
            incident.severity = severity
            incident.revision += 1
            rule = f"severity rose to {severity.value}: " + _describe(best, config.scaled(config.open_surprise), config)
            decisions.append(_decision(state, IncidentEventType.ESCALATED, best, rule, config))
    if incident.quiet_buckets >= config.buckets(config.resolve_quiet):
        incident.revision += 1
        quiet_minutes = round(incident.quiet_buckets * config.bucket / MINUTE)
        rule = f"{quiet_minutes} min without surprise above {config.scaled(config.resolve_surprise):.1f}"
        decisions.append(_decision(state, IncidentEventType.RESOLVED, short, rule, config))
        state.incident = None
        state.cooldown_until = end + config.cooldown
    return state, decisions


def judge(
    state: DetectorState, closed: list[Bucket], config: DetectorConfig
) -> tuple[DetectorState, list[BucketVerdict]]:
    """Step a brand through its newly closed buckets in order: the one entry point of the live alerter and backtests."""
    verdicts: list[BucketVerdict] = []
    for bucket in closed:
        own = score(state.baseline, bucket, config)
        dispersion = effective_dispersion(state.baseline, config)
        state, decisions = step(state, bucket, config)
        verdicts.append(BucketVerdict(bucket, own, dispersion, decisions))
    return state, verdicts


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
    window = scan(state.recent, effective_dispersion(state.baseline, config), config.window_lengths())
    minutes = round(window.buckets * config.bucket / MINUTE)
    rule = (
        f"{action.kind.value} by a person; now {window.observed} negative mentions in the last {minutes} min "
        f"vs {window.expected:.1f} expected (surprise {window.surprise:.1f})"
    )
    decision = _decision(state, event, window, rule, config, acted_by=action.user_id)
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
    points = []
    for first in range(0, len(recent), group):
        chunk = recent[first : first + group]
        expected = sum(b.expected_negative for b in chunk)
        low, high = expected_band(expected, dispersion)
        points.append(
            HistoryPoint(
                start=chunk[0].start,
                total=sum(b.total for b in chunk),
                negative=sum(b.negative for b in chunk),
                expected_negative=round(expected, 3),
                normal_low=low,
                normal_high=high,
            )
        )
    return tuple(points)


def expected_band(expected: float, dispersion: float, coverage: float = 0.95) -> tuple[int, int]:
    """The central ``coverage`` interval of the count law around ``expected`` (for charts of what is normal)."""
    tail = (1 - coverage) / 2
    if expected <= 0:
        return 0, 0
    if dispersion <= 0:
        law = poisson(expected)
    else:
        size = 1 / dispersion
        law = nbinom(size, size / (size + expected))
    return int(law.ppf(tail)), int(law.ppf(1 - tail))
