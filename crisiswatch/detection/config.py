"""The detector's settings: how readily a brand alerts, and every window, threshold and half-life.

One frozen dataclass shared by every stage of detection, so the live alerter,
backtests and evaluations judge with exactly the same numbers. Surprises are
in ``-log10`` probability units, durations in time. It needs no scipy, so a
command line or a settings file can build one cheaply.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field
from datetime import timedelta

from .memory import MemorySettings

HOURS = 24
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


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
    incident_level_halflife: timedelta = timedelta(hours=12)
    seasonal_halflife_days: float = 2.0
    dispersion_halflife: timedelta = timedelta(hours=36)
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
    calibration_ceiling: float = math.inf
    burst_ratio: float = 10.0
    rise_ratio: float = 2.0
    rise_min_per_hour: float = 5.0
    rise_hours: tuple[int, ...] = (3, 6)
    rise_evidence: float = 3.0
    young_days: int = 7
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
