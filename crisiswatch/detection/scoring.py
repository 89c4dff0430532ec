"""How surprising a closed bucket and each look-back window ending at it are.

Every closed bucket (one minute by default) ends several look-back windows,
from two minutes to four hours: a sudden storm shows in a few buckets, a slow
burn over hours. For each window the surprise is ``-log10 P(X >= observed)``
of its summed count under the baseline (:mod:`.count_laws`), less the ``log10`` of
the number of windows tried (a Bonferroni correction). The sums come from
the running totals the recent buckets keep, one subtraction per window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .baseline import expected_counts
from .config import DetectorConfig
from .count_laws import tail_surprise
from .state import Baseline, BucketScore, RecentBucket, WindowScore
from .windows import Bucket


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
    :func:`.baseline.window_dispersions`); each surprise is corrected for the
    number of windows tried.
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


def most_surprising(windows: list[WindowScore]) -> WindowScore:
    """The window with the largest surprise (an empty window when there is none)."""
    return max(windows, key=lambda w: w.surprise, default=WindowScore(1, 0, 0.0, 0.0))


def window_totals(recent: list[RecentBucket], window: WindowScore) -> tuple[int, float]:
    """All mentions in the window and how many were expected."""
    if window.hours:
        return window.observed_total, window.expected_total
    buckets = recent[-window.buckets :]
    return sum(b.total for b in buckets), sum(b.expected_total for b in buckets)


def window_reach(recent: list[RecentBucket], window: WindowScore) -> int:
    """Followers of the negative posts' authors in the window (a horizon: in the recent buckets kept), summed."""
    return sum(b.reach for b in recent[-window.buckets :])
