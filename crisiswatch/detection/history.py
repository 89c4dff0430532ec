"""The brand's recent history for charts: buckets merged into points, each with the range its count law calls normal.

An alert carries a brand's last hours with the normal range around each
expected count, and reports draw the same bands; both come from one
vectorised quantile call (:func:`expected_bands`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import nbinom, poisson

from crisiswatch.contracts.schemas import HistoryPoint

from .config import DetectorConfig
from .state import RecentBucket

HISTORY_POINTS = 60


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
