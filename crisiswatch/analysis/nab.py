"""Numenta Anomaly Benchmark scoring (pure): labelled windows, scaled-sigmoid rewards, profiles.

Each window rewards its earliest detection on a scaled sigmoid (0.987 at the
window's start, 0 at its end); a window with no detection costs the
false-negative weight; a detection outside every window costs the
false-positive weight times the sigmoid of its distance past the previous
window (the full weight before the first window); the first 15% of a series
(at most 750 rows) is a probation period that is not scored. Scores are
normalised so the null detector (never fires) scores 0 and the perfect one 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB application profile."""

    name: str
    tp: float
    fn: float
    fp: float


PROFILES = (
    Profile("standard", tp=1.0, fn=1.0, fp=0.11),
    Profile("low-FP", tp=1.0, fn=1.0, fp=0.22),
    Profile("low-FN", tp=1.0, fn=2.0, fp=0.11),
)


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: ~1 at relative position -1 (window start), 0 at 0 (window end), -1 far past it."""
    if position > 3.0:
        return -1.0
    return 2 / (1 + math.exp(5 * position)) - 1


@dataclass(frozen=True)
class SeriesScore:
    """Raw, null and perfect scores of one series under one profile, plus the counts behind them."""

    raw: float
    null: float
    perfect: float
    detected_windows: int
    windows: int
    false_positives: int


def window_indices(
    timestamps: Sequence[datetime], windows: Sequence[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """Row ranges ``[first, last]`` covered by each labelled window."""
    ranges = []
    for start, end in windows:
        inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if inside:
            ranges.append((inside[0], inside[-1]))
    return ranges


def score_series(
    alerts: Sequence[bool],
    timestamps: Sequence[datetime],
    windows: Sequence[tuple[datetime, datetime]],
    profile: Profile,
) -> SeriesScore:
    """Score one series' binary detections against its labelled windows."""
    ranges = window_indices(timestamps, windows)
    probation = min(math.floor(0.15 * len(alerts)), 750)
    raw = 0.0
    detected: set[int] = set()
    false_positives = 0
    for index, fired in enumerate(alerts):
        if not fired or index < probation:
            continue
        window = next((w for w, (a, b) in enumerate(ranges) if a <= index <= b), None)
        if window is not None:
            if window not in detected:
                first, last = ranges[window]
                position = -(last - index + 1) / (last - first + 1)
                raw += profile.tp * scaled_sigmoid(position)
                detected.add(window)
            continue
        false_positives += 1
        previous = [(a, b) for a, b in ranges if b < index]
        if previous:
            first, last = previous[-1]
            width = max(last - first, 1)
            raw += profile.fp * scaled_sigmoid(abs(last - index) / width)
        else:
            raw -= profile.fp
    missed = len(ranges) - len(detected)
    raw -= profile.fn * missed
    return SeriesScore(
        raw=raw,
        null=-profile.fn * len(ranges),
        perfect=profile.tp * scaled_sigmoid(-1.0) * len(ranges),
        detected_windows=len(detected),
        windows=len(ranges),
        false_positives=false_positives,
    )


def normalised(scores: Sequence[SeriesScore]) -> float:
    """Corpus score in [.., 100]: 0 for the null detector, 100 for the perfect one."""
    raw = sum(s.raw for s in scores)
    null = sum(s.null for s in scores)
    perfect = sum(s.perfect for s in scores)
    return 100 * (raw - null) / (perfect - null)
