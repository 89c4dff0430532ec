"""A brand's day-scale memory (pure): mentions per hour over the last weeks, its weekly rhythm, and what is normal.

The fast look-back windows judge minutes to hours against an exponentially
weighted level, which follows a rise that builds over a day. This memory is
what a day-long doubling is judged against instead: the brand's negative and
total mentions per hour over the last ``memory_days``, kept as two short lists
of integers (bounded per brand, whatever its volume). For each horizon
(3, 6, 12 and 24 hours) the last ``H`` hours are compared with the same hours
of the previous days, each hour rescaled by the weekly rhythm, and "normal" is
their median: a past incident, or today's surge once it is a day old, is one
day among up to four weeks and does not drag it up. How far those days stray
from their median, on a log scale, is the horizon's spread.

The weekly rhythm is one factor per hour of the week, the brand's negative
mentions over the 24 hours around it against its average day, learnt from the
complete weeks remembered (in full from two weeks, half way after one), so
weekend troughs are not read as the brand's normal on Monday morning.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, NamedTuple

import numpy as np
from pydantic import Field

HOUR = timedelta(hours=1)
DAY_HOURS = 24
WEEK_HOURS = 7 * DAY_HOURS
FLAT_WEEK = (1.0,) * WEEK_HOURS


class Reference(NamedTuple):
    """What the same hours of previous days held for one horizon, fixed for the current hour.

    ``base`` is the median over days of the ``H`` hours before the current
    clock hour, ``full`` the median of those plus the current clock hour; the
    expectation for a partly elapsed hour lies between them. Totals alike.
    """

    hours: int
    days: int
    base_negative: float
    full_negative: float
    base_total: float
    full_total: float
    spread: float
    day_to_day: float
    share_spread: float
    degrees: float
    own_day_to_day: float
    base_voices: float
    full_voices: float


@dataclass(slots=True)
class HourlyMemory:
    """Negative and total mentions per hour: completed hours oldest first, then the hour being filled.

    ``hour`` is the start of the hour being filled (``negative_now`` and
    ``total_now`` so far); the last completed hour ended at ``hour``.
    ``echoes`` counts the negative mentions that were explicit retweets
    (one voice repeated), aligned with the end of ``negative`` (a state from
    before it was kept has fewer or none: the missing hours count none). The lists
    are replaced, never changed in place, so a copy of the detector state may
    share them. ``weekly`` and ``references`` are derived from the counts
    when an hour completes and are not stored.
    """

    hour: datetime | None = None
    negative_now: int = 0
    total_now: int = 0
    negative: list[int] = field(default_factory=list)
    total: list[int] = field(default_factory=list)
    echoes_now: int = 0
    echoes: list[int] = field(default_factory=list)
    weekly: Annotated[tuple[float, ...] | None, Field(exclude=True)] = field(default=None, repr=False, compare=False)
    references: Annotated[dict[int, Reference] | None, Field(exclude=True)] = field(
        default=None, repr=False, compare=False
    )

    @property
    def hours_known(self) -> int:
        """Completed hours remembered."""
        return len(self.negative)

    def voices(self, hours: int) -> list[int]:
        """The last ``hours`` completed hours' negative mentions less their explicit retweets."""
        negative = self.negative[-hours:] if hours > 0 else []
        echoes = self.echoes[-len(negative) :] if negative else []
        echoes = [0] * (len(negative) - len(echoes)) + echoes
        return [n - e for n, e in zip(negative, echoes, strict=True)]


@dataclass(frozen=True)
class MemorySettings:
    """How much a brand remembers and how its day-scale normal is estimated (fixed by principle, see docs)."""

    memory_days: int = 28
    horizons: tuple[int, ...] = (3, 6, 12, 24)
    burst_hours: int = 1
    min_days: int = 3
    min_dispersion: float = 0.01
    max_quiet_gap_hours: int = 6
    prior_day_spread: float = 0.4
    """A brand's day-to-day spread (log scale, beyond Poisson) before its own days say otherwise."""
    prior_days: float = 4.0
    """How many days of a brand's own history the prior on its spread weighs as (0: the brand's days alone)."""

    def __post_init__(self) -> None:
        if self.min_days < 2:
            raise ValueError(f"min_days must be at least 2 (a spread needs two days), not {self.min_days}")

    @property
    def keep_hours(self) -> int:
        """Completed hours kept: the memory plus the longest horizon, so the oldest day still has its window."""
        return self.memory_days * DAY_HOURS + max(self.horizons, default=0)


def hour_start(moment: datetime) -> datetime:
    """The start of the clock hour holding ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def remember(
    memory: HourlyMemory, start: datetime, negative: int, total: int, settings: MemorySettings, echoes: int = 0
) -> HourlyMemory:
    """``memory`` with a closed bucket starting at ``start`` added; a new object, ``memory`` is left as it was.

    The alerter closes empty buckets too, so its buckets follow each other:
    a few hours without one are quiet hours, but a jump of more than
    ``max_quiet_gap_hours`` means hours nobody saw (seeded history that ends
    before the live stream, a long outage upstream), and reading them as
    quiet would make every normal day look like a surge, so the memory starts
    again from this hour. A bucket from an hour already completed (history
    that overlaps the stream) is left out. At most ``keep_hours`` are kept.
    ``echoes`` is how many of the bucket's negative mentions were explicit retweets.
    """
    hour = hour_start(start)
    if memory.hour is None:
        return HourlyMemory(hour, negative, total, echoes_now=echoes)
    if hour < memory.hour:
        return memory
    gap = round((hour - memory.hour) / HOUR) - 1
    if gap > settings.max_quiet_gap_hours:
        return HourlyMemory(hour, negative, total, echoes_now=echoes)
    if hour == memory.hour:
        return dataclasses.replace(
            memory,
            negative_now=memory.negative_now + negative,
            total_now=memory.total_now + total,
            echoes_now=memory.echoes_now + echoes,
        )
    keep = settings.keep_hours
    negatives = [*memory.negative[-keep:], memory.negative_now, *([0] * gap)][-keep:]
    totals = [*memory.total[-keep:], memory.total_now, *([0] * gap)][-keep:]
    echoed = [*memory.echoes[-keep:], memory.echoes_now, *([0] * gap)][-keep:]
    return derived(HourlyMemory(hour, negative, total, negatives, totals, echoes, echoed), settings)


def derived(memory: HourlyMemory, settings: MemorySettings) -> HourlyMemory:
    """``memory`` with its weekly factors and references (a new object when they had to be computed).

    They are not stored with the state, so a state loaded from the changelog
    lacks them; the alerter loads a brand's state for every batch of closed
    buckets, so the results are cached per (completed hours, settings).
    """
    if memory.weekly is not None and memory.references is not None:
        return memory
    if memory.hour is None:
        return dataclasses.replace(memory, weekly=FLAT_WEEK, references={})
    weekly, found = _derive(memory.hour, tuple(memory.negative), tuple(memory.total), tuple(memory.echoes), settings)
    return dataclasses.replace(memory, weekly=weekly, references=found)


@functools.lru_cache(maxsize=4096)
def _derive(
    hour: datetime,
    negatives: tuple[int, ...],
    totals: tuple[int, ...],
    echoes: tuple[int, ...],
    settings: MemorySettings,
) -> tuple[tuple[float, ...], dict[int, Reference]]:
    completed = HourlyMemory(hour, 0, 0, list(negatives), list(totals), 0, list(echoes))
    completed.weekly = weekly_factors(completed)
    return completed.weekly, references(completed, settings)


def weekly_factors(memory: HourlyMemory) -> tuple[float, ...]:
    """One multiplier per hour of the week (Monday 00:00 UTC first, mean 1) for the brand's weekly rhythm.

    Each is the brand's negative mentions over the 24 hours around that hour
    of the week against that week's average day, the median over the complete weeks
    remembered, each hour first clipped at three times the week's average
    hour plus three (a storm is an event, not the rhythm; one week of news
    does not make its weekdays busy): a smooth weekly level that dips over the weekend wherever the brand's
    weekend falls in UTC, while the hour-of-day rhythm keeps the shape within
    a day. Once two complete weeks are known it is what they show; after one
    week it goes half way from flat (that week may have been an odd one);
    before that the week is flat.
    """
    weeks = memory.hours_known // WEEK_HOURS
    if memory.hour is None or weeks < 1:
        return FLAT_WEEK
    counts = np.asarray(memory.negative[-weeks * WEEK_HOURS :], dtype=float).reshape(weeks, WEEK_HOURS)
    counts = np.minimum(counts, 3 * counts.mean(axis=1, keepdims=True) + 3)
    first = hour_of_week(memory.hour)
    padded = np.concatenate((counts[:, -12:], counts, counts[:, :11]), axis=1)
    around = np.stack([np.convolve(week, np.ones(DAY_HOURS), "valid") for week in padded])
    ratios = (around + 1) / (around.mean(axis=1, keepdims=True) + 1)
    weight = 1.0 if weeks >= 2 else 0.5
    factors = 1 + weight * (np.roll(np.median(ratios, axis=0), first) - 1)
    return tuple(float(f) for f in factors / factors.mean())


def hour_of_week(moment: datetime) -> int:
    """Hours since the start of the UTC week (Monday 00:00 is 0)."""
    return moment.weekday() * DAY_HOURS + moment.hour


def references(memory: HourlyMemory, settings: MemorySettings) -> dict[int, Reference]:
    """Each horizon's normal for the current hour from the same hours of up to ``memory_days`` previous days.

    A day counts when its whole window is remembered. Every remembered hour
    is divided by the weekly factor of its hour of the week and multiplied by
    the factor of the hour it stands in for today, so a Sunday evening in the
    window of a Monday morning is not read as Monday's normal. A horizon with
    fewer than ``min_days`` such days has no reference yet (a median of fewer
    than three values is not robust to one odd day).
    """
    if memory.hour is None:
        return {}
    weekly = np.asarray(memory.weekly or weekly_factors(memory))
    n = memory.hours_known
    now = hour_of_week(memory.hour)
    factors = weekly[(now - n + np.arange(n + 1)) % WEEK_HOURS]
    negatives = np.asarray([*memory.negative, 0], dtype=float) / factors
    totals = np.asarray([*memory.total, 0], dtype=float) / factors
    voices = np.asarray([*memory.voices(n), 0], dtype=float) / factors
    found: dict[int, Reference] = {}
    for hours in sorted({settings.burst_hours, *settings.horizons}):
        ends = np.asarray(
            [n - DAY_HOURS * day for day in range(1, settings.memory_days + 1) if n - DAY_HOURS * day - hours >= 0]
        )
        if len(ends) < settings.min_days:
            continue
        window = ends[:, None] - hours + np.arange(hours)[None, :]
        today = factors[n - hours : n]
        base_negative = (negatives[window] * today).sum(axis=1)
        full_negative = base_negative + negatives[ends] * factors[n]
        base_total = (totals[window] * today).sum(axis=1)
        full_total = base_total + totals[ends] * factors[n]
        base_voices = (voices[window] * today).sum(axis=1)
        full_voices = base_voices + voices[ends] * factors[n]
        spread = _log_spread(full_negative, settings)
        own = max(spread**2 - 1 / (float(np.median(full_negative)) + 0.5), 0.0)
        seen = len(ends) - 1
        weight = settings.prior_days
        found[hours] = Reference(
            hours=hours,
            days=len(ends),
            base_negative=float(np.median(base_negative)),
            full_negative=float(np.median(full_negative)),
            base_total=float(np.median(base_total)),
            full_total=float(np.median(full_total)),
            spread=spread,
            day_to_day=(weight * settings.prior_day_spread**2 + seen * own) / (weight + seen),
            share_spread=_log_spread(full_negative / np.maximum(full_total, 1.0), settings, full_negative),
            degrees=weight + seen,
            own_day_to_day=own,
            base_voices=float(np.median(base_voices)),
            full_voices=float(np.median(full_voices)),
        )
    return found


def _log_spread(values: np.ndarray, settings: MemorySettings, counts: np.ndarray | None = None) -> float:
    """How far a day's value strays from the median on a log scale: the root mean square of the log ratios.

    Taken over the days (the single most deviant one left out once five are
    known: one past incident does not teach the brand that storms are
    normal), so ordinary heavy days, news and the Poisson noise of the counts
    all widen what is normal; never below what ``min_dispersion`` and
    Poisson noise alone would give for the ``counts`` behind the values
    (the values themselves when they are counts).
    """
    logs = np.log(values + (0.5 if counts is None else 1e-3))
    squares = np.sort((logs - np.median(logs)) ** 2)
    if len(squares) >= 5:
        squares = squares[:-1]
    middle = float(np.median(values if counts is None else counts))
    least = math.sqrt(settings.min_dispersion + 1 / (middle + 0.5))
    return max(least, math.sqrt(float(squares.mean())))


class HorizonCounts(NamedTuple):
    """One horizon's counts up to the latest bucket and what the same hours of previous days make normal."""

    hours: int
    observed: int
    expected: float
    observed_total: int
    expected_total: float
    day_to_day: float
    share_spread: float
    days: int
    start: datetime
    degrees: float = 0.0
    """Degrees of freedom of the spread: the days seen less one, plus the prior's weight."""
    own_day_to_day: float = 0.0
    """The brand's own day-to-day variance beyond Poisson (log scale), without the prior: what its days alone say."""
    observed_voices: int = 0
    """``observed`` less its explicit retweets."""
    expected_voices: float = 0.0
    """``expected`` for negative mentions less their explicit retweets."""


def horizon_counts(memory: HourlyMemory, end: datetime, horizons: tuple[int, ...]) -> list[HorizonCounts]:
    """The last ``H`` completed hours plus the hour being filled (up to ``end``) against their reference."""
    if memory.hour is None or not memory.references:
        return []
    elapsed = min(max((end - memory.hour) / HOUR, 0.0), 1.0)
    found = []
    for hours in horizons:
        reference = memory.references.get(hours)
        if reference is None or memory.hours_known < hours:
            continue
        observed = sum(memory.negative[-hours:]) + memory.negative_now
        voices = sum(memory.voices(hours)) + memory.negative_now - memory.echoes_now
        observed_total = sum(memory.total[-hours:]) + memory.total_now
        expected = reference.base_negative + elapsed * (reference.full_negative - reference.base_negative)
        expected_total = reference.base_total + elapsed * (reference.full_total - reference.base_total)
        found.append(
            HorizonCounts(
                hours,
                observed,
                expected,
                observed_total,
                expected_total,
                reference.day_to_day,
                reference.share_spread,
                reference.days,
                memory.hour - HOUR * hours,
                reference.degrees,
                reference.own_day_to_day,
                voices,
                reference.base_voices + elapsed * (reference.full_voices - reference.base_voices),
            )
        )
    return found


def part_of_day(moment: datetime) -> str:
    """``Sunday afternoon``: how a service lead names the time a horizon ends at (UTC)."""
    hour = moment.hour
    part = "night" if hour < 6 else "morning" if hour < 12 else "afternoon" if hour < 18 else "evening"
    return f"{moment:%A} {part}"
