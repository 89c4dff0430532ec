"""Day-scale horizons: the last 3, 6, 12 and 24 hours against the same hours of the previous days.

The fast windows judge minutes to hours against the baseline's level, which
follows a rise that builds over hours. The horizons judge the same rise
against the brand's hourly memory (:mod:`.memory`) instead, so a day-long
doubling is still seen; each is scored like a window, with the day-scale
laws of :mod:`.count_laws`, and opens an incident only while its rise is still
under way (:func:`still_rising`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from .config import HOUR, DetectorConfig
from .count_laws import day_count_surprise, day_share_surprise
from .memory import HorizonCounts, HourlyMemory, horizon_counts
from .state import WindowScore


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
