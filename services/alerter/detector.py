"""The crisis detector (pure and deterministic): closed buckets in, incident decisions out.

Negative mentions per bucket are counts, so they are judged as counts: the
surprise of a bucket is ``-log10 P(X >= observed)`` under a Poisson law around
the brand's baseline, which holds at a fraction of a mention per bucket and at
hundreds. A new brand learns its level during a warm-up before it may alert.
An incident opens only when ``confirm_buckets`` consecutive buckets are
surprising and together hold ``min_negative`` mentions; it resolves after
``resolve_quiet_buckets`` unsurprising buckets (hysteresis), and a brand
cannot re-open within the cooldown. The baseline is a winsorised EWMA that is
frozen while an incident is open, so the spike never teaches it that storms are
normal. The same code runs in the live alerter and in offline backtests.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from scipy.stats import nbinom, poisson

from crisiswatch.contracts.schemas import IncidentEventType, SampleMention, Severity

from .windows import Bucket


class Sensitivity(enum.StrEnum):
    """How readily a brand alerts ("fewer" alerts, "balanced", or "more")."""

    FEWER = "fewer"
    BALANCED = "balanced"
    MORE = "more"


_SURPRISE_SCALE = {Sensitivity.FEWER: 1.5, Sensitivity.BALANCED: 1.0, Sensitivity.MORE: 0.7}


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds of the detector; surprises are in -log10 probability units."""

    bucket: timedelta = timedelta(minutes=5)
    sensitivity: Sensitivity = Sensitivity.BALANCED
    prior_negative_per_bucket: float = 1.0
    prior_total_per_bucket: float = 8.0
    prior_pseudo_buckets: float = 2.0
    warmup_buckets: int = 12
    baseline_halflife_buckets: float = 72.0
    seasonal_rate: float = 0.05
    dispersion_rate: float = 0.05
    max_dispersion: float = 2.0
    floor_negative_per_bucket: float = 0.2
    hot_surprise: float = 3.0
    open_surprise: float = 10.0
    confirm_buckets: int = 2
    min_negative: int = 8
    resolve_surprise: float = 1.3
    resolve_quiet_buckets: int = 3
    cooldown_buckets: int = 72
    winsor_sigmas: float = 3.0

    def scaled(self, value: float) -> float:
        """A surprise threshold adjusted for the sensitivity setting."""
        return value * _SURPRISE_SCALE[self.sensitivity]


HOURS = 24


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


class DetectorState(BaseModel):
    """Everything the detector remembers about one brand (JSON-serialisable for a changelogged table)."""

    brand: str
    baseline: Baseline
    hot_streak: list[Bucket] = Field(default_factory=list)
    incident: OpenIncident | None = None
    cooldown_until: datetime | None = None
    incidents_opened: int = 0

    @classmethod
    def fresh(cls, brand: str, config: DetectorConfig) -> DetectorState:
        """A brand never seen before starts from the prior."""
        return cls(
            brand=brand,
            baseline=Baseline(negative=config.prior_negative_per_bucket, total=config.prior_total_per_bucket),
        )


@dataclass(frozen=True)
class BucketScore:
    """How unusual one bucket is for the brand."""

    expected_negative: float
    expected_total: float
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


def tail_surprise(observed: int, expected: float, dispersion: float = 0.0) -> float:
    """``-log10 P(X >= observed)``; 0 when nothing exceeds expectation.

    ``X`` is Poisson(expected) or, with ``dispersion`` > 0, negative binomial
    with that mean and variance ``expected + dispersion * expected**2``.
    """
    if observed <= 0 or observed <= expected:
        return 0.0
    mean = max(expected, 1e-9)
    if dispersion < 1e-6:
        log_tail = poisson.logsf(observed - 1, mean)
    else:
        size = 1 / dispersion
        log_tail = nbinom.logsf(observed - 1, size, size / (size + mean))
    return float(-log_tail / math.log(10))


def expected_counts(baseline: Baseline, config: DetectorConfig, moment: datetime) -> tuple[float, float]:
    """Expected negative and total mentions in the bucket starting at ``moment``."""
    factor = baseline.daily[moment.hour]
    return max(baseline.negative * factor, config.floor_negative_per_bucket), max(baseline.total * factor, 1.0)


def score(baseline: Baseline, bucket: Bucket, config: DetectorConfig) -> BucketScore:
    """The bucket's expected counts and its surprise."""
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start)
    surprise = tail_surprise(bucket.negative, expected_negative, baseline.dispersion)
    return BucketScore(expected_negative, expected_total, surprise)


def updated_baseline(baseline: Baseline, bucket: Bucket, config: DetectorConfig) -> Baseline:
    """Fold a bucket into the baseline: level, hour-of-day rhythm and spread.

    While history is short the levels are running means of what was seen, with
    the prior counting as ``prior_pseudo_buckets`` observations; after the
    warm-up they are EWMAs of buckets clipped to ``winsor_sigmas`` standard
    deviations above expectation, so one spike cannot drag the baseline up.
    """
    seen = baseline.buckets_seen
    alpha = max(1 - 0.5 ** (1 / config.baseline_halflife_buckets), 1 / (seen + 1 + config.prior_pseudo_buckets))
    hour = bucket.start.hour
    factor = baseline.daily[hour]
    expected_negative, expected_total = expected_counts(baseline, config, bucket.start)
    negative, total = float(bucket.negative), float(bucket.total)
    if seen >= config.warmup_buckets:
        spread = math.sqrt(expected_negative + baseline.dispersion * expected_negative**2)
        negative = min(negative, expected_negative + config.winsor_sigmas * spread + 1)
        total_spread = math.sqrt(expected_total + baseline.dispersion * expected_total**2)
        total = min(total, expected_total + config.winsor_sigmas * total_spread + 1)
    level = (1 - alpha) * baseline.negative + alpha * negative / factor
    daily = list(baseline.daily)
    dispersion = baseline.dispersion
    if seen >= config.warmup_buckets:
        if baseline.negative > 0:
            observed_factor = min(max(negative / baseline.negative, 0.2), 5.0)
            daily[hour] = (1 - config.seasonal_rate) * factor + config.seasonal_rate * observed_factor
            mean = sum(daily) / HOURS
            daily = [f / mean for f in daily]
        if expected_negative >= 1.0:
            residual = float(bucket.negative) - expected_negative
            excess = (residual**2 - expected_negative) / expected_negative**2
            excess = min(max(excess, 0.0), config.max_dispersion)
            dispersion = (1 - config.dispersion_rate) * dispersion + config.dispersion_rate * excess
    return Baseline(
        negative=level,
        total=(1 - alpha) * baseline.total + alpha * total / factor,
        dispersion=dispersion,
        daily=daily,
        buckets_seen=seen + 1,
    )


def severity_for(surprise: float, observed: int, expected: float, config: DetectorConfig) -> Severity:
    """Watch / warning / critical from how surprising and how large the surge is."""
    ratio = observed / max(expected, 1e-9)
    if surprise >= config.scaled(2 * config.open_surprise) and ratio >= 8:
        return Severity.CRITICAL
    if surprise >= config.scaled(1.5 * config.open_surprise) or ratio >= 4:
        return Severity.WARNING
    return Severity.WATCH


def _merge_samples(*groups: list[SampleMention]) -> list[SampleMention]:
    seen: dict[str, SampleMention] = {}
    for group in groups:
        for sample in group:
            seen.setdefault(sample.id, sample)
    ranked = sorted(seen.values(), key=lambda s: s.negative_score * math.log10(10 + s.author_followers), reverse=True)
    return ranked[:5]


def step(state: DetectorState, bucket: Bucket, config: DetectorConfig) -> tuple[DetectorState, list[Decision]]:
    """Advance one brand by one closed bucket; returns the new state and any incident events."""
    state = state.model_copy(deep=True)
    bucket_score = score(state.baseline, bucket, config)
    end = bucket.start + config.bucket
    bucket.negative / bucket.total if bucket.total else 0.0
    baseline_share = min(1.0, bucket_score.expected_negative / bucket_score.expected_total)
    decisions: list[Decision] = []

    def decision(event: IncidentEventType, window: list[Bucket], surprise: float, rule: str) -> Decision:
        incident = state.incident
        assert incident is not None
        observed = sum(b.negative for b in window)
        total = sum(b.total for b in window)
        return Decision(
            event=event,
            incident_id=incident.incident_id,
            revision=incident.revision,
            brand=state.brand,
            severity=incident.severity,
            window_start=window[0].start,
            window_end=window[-1].start + config.bucket,
            opened_at=incident.opened_at,
            observed_negative=observed,
            expected_negative=round(bucket_score.expected_negative * len(window), 3),
            observed_total=total,
            expected_total=round(bucket_score.expected_total * len(window), 3),
            negative_share=round(observed / total, 4) if total else 0.0,
            baseline_negative_share=round(baseline_share, 4),
            surprise=round(surprise, 2),
            reach=sum(b.reach_negative for b in window),
            rule=rule,
            samples=tuple(incident.samples),
            peak_negative=incident.peak_negative,
            total_negative=incident.total_negative,
        )

    if state.incident is None and state.baseline.buckets_seen < config.warmup_buckets:
        state.baseline = updated_baseline(state.baseline, bucket, config)
        return state, decisions

    if state.incident is None:
        hot = bucket_score.surprise >= config.scaled(config.hot_surprise) and bucket.negative > 0
        state.hot_streak = [*state.hot_streak, bucket][-config.confirm_buckets :] if hot else []
        cooling = state.cooldown_until is not None and bucket.start < state.cooldown_until
        if len(state.hot_streak) >= config.confirm_buckets and not cooling:
            window = state.hot_streak
            observed = sum(b.negative for b in window)
            expected = bucket_score.expected_negative * len(window)
            combined = tail_surprise(observed, expected, state.baseline.dispersion)
            if observed >= config.min_negative and combined >= config.scaled(config.open_surprise):
                state.incidents_opened += 1
                state.incident = OpenIncident(
                    incident_id=f"{state.brand}-{window[0].start:%Y%m%dT%H%M}",
                    revision=1,
                    opened_at=end,
                    severity=severity_for(combined, observed, expected, config),
                    peak_negative=max(b.negative for b in window),
                    total_negative=observed,
                    samples=_merge_samples(*(b.samples for b in window)),
                )
                rule = (
                    f"{len(window)} consecutive buckets above {config.scaled(config.hot_surprise):.1f} surprise; "
                    f"combined surprise {combined:.1f} >= {config.scaled(config.open_surprise):.1f} with "
                    f"{observed} >= {config.min_negative} negative mentions"
                )
                decisions.append(decision(IncidentEventType.OPENED, window, combined, rule))
                state.hot_streak = []
        if state.incident is None and not hot:
            state.baseline = updated_baseline(state.baseline, bucket, config)
        return state, decisions

    incident = state.incident
    incident.total_negative += bucket.negative
    incident.peak_negative = max(incident.peak_negative, bucket.negative)
    incident.samples = _merge_samples(incident.samples, bucket.samples)
    if bucket_score.surprise < config.scaled(config.resolve_surprise):
        incident.quiet_buckets += 1
    else:
        incident.quiet_buckets = 0
        severity = severity_for(bucket_score.surprise, bucket.negative, bucket_score.expected_negative, config)
        if severity.rank > incident.severity.rank:
            incident.severity = severity
            incident.revision += 1
            rule = f"severity rose to {severity.value}: surprise {bucket_score.surprise:.1f} in one bucket"
            decisions.append(decision(IncidentEventType.ESCALATED, [bucket], bucket_score.surprise, rule))
    if incident.quiet_buckets >= config.resolve_quiet_buckets:
        incident.revision += 1
        rule = (
            f"{incident.quiet_buckets} consecutive buckets below {config.scaled(config.resolve_surprise):.1f} surprise"
        )
        decisions.append(decision(IncidentEventType.RESOLVED, [bucket], bucket_score.surprise, rule))
        state.incident = None
        state.cooldown_until = end + config.bucket * config.cooldown_buckets
    return state, decisions
