"""What is normal for a brand and how it learns: its level, its rhythm over the day and the week, its spread.

Each brand has a baseline that learns its level, its rhythm over the day and
the week (the weekly factors come from the brand's hourly memory,
:mod:`.memory`) and its spread; the expected count of a bucket is the level
times both factors. The rhythm and the spread are frozen while a brand is
hot, so neither a spike nor a slow burn teaches it that storms are normal.
Its level keeps learning during an incident, but slowly
(``incident_level_halflife``, each bucket clipped): a crisis of a few hours
barely moves it, while a lasting shift in how much a brand is talked about
becomes its normal within a day or two and lets the incident end, instead
of holding it open until someone resolves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from .config import HOURS, DetectorConfig
from .memory import hour_of_week
from .state import Baseline, WindowScore
from .windows import Bucket


def expected_counts(
    baseline: Baseline, config: DetectorConfig, moment: datetime, weekly: tuple[float, ...] | None = None
) -> tuple[float, float]:
    """Expected negative and total mentions in the bucket starting at ``moment`` (hour of day, then of the week)."""
    factor = baseline.daily[moment.hour] * (weekly[hour_of_week(moment)] if weekly else 1.0)
    floor = config.per_bucket(config.floor_negative_per_hour)
    return max(baseline.negative * factor, floor), max(baseline.total * factor, 1e-3)


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
