"""The count laws that turn mentions into surprises: ``-log10`` of how unlikely a count or a share is.

Negative mentions are counts, so they are judged as counts: a window's sum is
negative binomial around what the baseline expects (variance
``mu + dispersion * mu**2``), which is Poisson for a well-behaved brand and
holds at a fraction of a mention per bucket and at hundreds; the negative
share of all mentions is binomial around the brand's usual mix. A day-scale
horizon's count is Poisson around the previous days' median times a
log-normal day-to-day swing, read through Student's t so that few days of
history make it cautious by themselves. Every surprise is at most
``MAX_SURPRISE``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from .memory import HorizonCounts

MAX_SURPRISE = 300.0


_nodes, _weights = np.polynomial.hermite.hermgauss(24)
_HERMITE_NODES = math.sqrt(2) * _nodes
_HERMITE_WEIGHTS = _weights / math.sqrt(math.pi)


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
    return _through_t(tail, counts.degrees or counts.days - 1)


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


def _through_t(tail: float, degrees: float) -> float:
    """A normal tail probability re-read through Student's t with ``degrees`` of freedom, as a surprise."""
    if tail >= 0.5:
        return 0.0
    z = -float(special.ndtri(max(tail, 1e-300)))
    heavier = special.stdtr(degrees, -z)
    return surprise_of(heavier)


def rise_evidence(observed: int, normal: float, ratio: float, day_to_day: float) -> float:
    """How strongly ``observed`` says "``ratio`` times normal" rather than "normal": a log10 likelihood ratio.

    The counts are negative binomial around their mean, with the brand's own
    day-to-day variance (log scale) as the extra-Poisson part: hours of
    excess on a brand whose days barely stray are strong evidence, the same
    excess on a brand whose days swing is weak. The brand's own spread, not
    the prior learnt across brands, is what a young brand's test reads: the
    evidence threshold, chosen by validation, guards against a spread
    guessed too small from a few days.
    """
    if day_to_day <= 1e-9:
        return (observed * math.log(ratio) - (ratio - 1) * normal) / math.log(10)
    size = 1 / day_to_day
    rise = stats.nbinom.logpmf(observed, size, size / (size + ratio * normal))
    calm = stats.nbinom.logpmf(observed, size, size / (size + normal))
    return float(rise - calm) / math.log(10)
