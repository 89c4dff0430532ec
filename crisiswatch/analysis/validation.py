"""Leave-one-stream-out validation of the detector's settings over the real streams, with the synthetic suite as a fold.

The folds are one stream each: the five NAB realTweets series, the Comcast
complaints of 2015 and the Apple week of December 2014 (``streams/``), and the
synthetic suite as one more fold (never the chooser alone). Every grid point
is run on every fold once; for each fold, the point that scores best on the
mean of the *other* folds is the one it is judged with. The held-out results,
their mean and the worst fold are what predict a stream nobody tuned on; the
point best on all folds together is what ships.

Each fold's score is on one scale, 100 for perfect, and for a real stream
with labelled windows it is the mean of two parts: the stream replayed whole,
and its **young-brand episodes**, each labelled window replayed from a fresh
start ``YOUNG_HISTORY`` (three days) before it, as a brand that began to be
watched three days before its crisis would live it
(:func:`young_nab_episodes`, :func:`young_stream_episodes`).
The parts are scored alike:

- a NAB series: its NAB standard score (normalised: 0 never fires, 100 perfect);
- a real stream: 100 times the share of its labelled windows opened within
  ``DEADLINE`` of their start, less 11 for each incident nobody wanted (NAB's
  standard false-positive weight, 0.11 of a window); the calm Apple week
  starts from 100;
- the synthetic suite: 100 times its recall, less 11 for each false incident
  on a calm brand-week, and 0 when sudden storms at one negative a minute and
  above are seen later than five minutes (median).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from statistics import mean

import numpy as np

from crisiswatch.contracts.schemas import IncidentEventType, ScoredMention, Sentiment
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket

from .compare import KnownIncident, load_known
from .counts import bucket_width, read_series
from .evaluate import nab_windows, score_every_series
from .nab import normalised
from .streams import DEFAULT_LABELS, StreamOutcome, opened_incidents, run_streams, stream_mentions
from .synthetic import quick_suite, run_suite

YOUNG_HISTORY = timedelta(days=3)
"""A young-brand episode starts this long before its labelled window: the issue's three days of history."""
DEADLINE = timedelta(hours=6)
"""A labelled surge counts as caught when an incident opens within this of its start (the issue's six hours)."""
FALSE_ALARM_COST = 11.0
"""Points lost per unwanted incident: NAB's standard false-positive weight (0.11) of a window's 100."""
SUDDEN_DELAY_MINUTES = 5.0

Setting = tuple[tuple[str, float], ...]
Grid = dict[tuple[str, ...], tuple[tuple[float, ...], ...]]
"""Settings that vary together (a tuple of names) and the values they take together; the grid is their product."""

GRID: Grid = {
    ("rise_evidence",): ((1000.0,), (2.0,), (3.0,)),
    ("memory.prior_days",): ((0.0,), (4.0,)),
    ("incident_level_halflife", "dispersion_halflife"): ((0.5, 1.5), (1.0, 3.0)),
}
"""The settings chosen by the validation and the values tried (half-lives in days; 1000 is off).

The two half-lives move together (both short or both long), and
``calibration_ceiling`` stays at none, as the previous round's validation
chose it over 4 on the same folds, to keep the grid at twelve points on a
shared two-core machine.
"""
QUICK_GRID: Grid = {("rise_evidence",): ((1000.0,), (2.0,))}
"""A small grid for a quick run of the same protocol (tests)."""


def grid_points(grid: Grid) -> list[Setting]:
    """Every point of ``grid``: one value tuple per group of settings, in product."""
    return [
        tuple(pair for names, values in zip(grid, choice, strict=True) for pair in zip(names, values, strict=True))
        for choice in itertools.product(*grid.values())
    ]


@dataclass(frozen=True)
class FoldResult:
    """One fold under one setting: its score (100 is perfect) and the figures behind it, in words."""

    score: float
    detail: str
    low_fp: float | None = None
    whole: float | None = None
    """The whole replay's score, where the fold also has young-brand episodes."""
    young: float | None = None
    """The young-brand episodes' score, where the fold has them."""


def configured(base: DetectorConfig, point: Setting) -> DetectorConfig:
    """``base`` with the grid point's settings (``memory.x`` names a memory setting; half-lives are in days)."""
    top: dict[str, object] = {}
    memory: dict[str, object] = {}
    for name, value in point:
        if name.startswith("memory."):
            field = name.removeprefix("memory.")
            memory[field] = type(getattr(base.memory, field))(value)
            continue
        default = getattr(base, name)
        top[name] = timedelta(days=value) if isinstance(default, timedelta) else type(default)(value)
    if memory:
        top["memory"] = replace(base.memory, **memory)
    return replace(base, **top)


def stream_fold(outcome: StreamOutcome) -> FoldResult:
    """A real stream's score: windows opened within ``DEADLINE``, less ``FALSE_ALARM_COST`` per unwanted incident."""
    on_time = sum(d is not None and d <= DEADLINE for d in outcome.delays)
    base = 100.0 * on_time / outcome.windows if outcome.windows else 100.0
    delays = ", ".join("missed" if d is None else f"{d / timedelta(hours=1):.1f} h" for d in outcome.delays)
    detail = (f"opened after {delays}; " if outcome.windows else "") + f"{len(outcome.unwanted)} unwanted"
    return FoldResult(base - FALSE_ALARM_COST * len(outcome.unwanted), detail)


@dataclass(frozen=True)
class YoungOutcome:
    """One labelled window lived by a young brand: whether it was caught in time, and the openings nobody wanted."""

    caught: bool
    unwanted: int
    delay: timedelta | None


def young_score(outcomes: Sequence[YoungOutcome]) -> float:
    """The young-brand episodes' score: 100 times the share caught, less ``FALSE_ALARM_COST`` per unwanted opening."""
    return mean(100.0 * o.caught - FALSE_ALARM_COST * o.unwanted for o in outcomes)


def _young_outcome(
    opened: Sequence[datetime],
    window: tuple[datetime, datetime],
    labelled: Sequence[tuple[datetime, datetime]],
    deadline: timedelta | None,
) -> YoungOutcome:
    start, end = window
    inside = [moment for moment in opened if start <= moment <= end]
    delay = inside[0] - start if inside else None
    caught = delay is not None and (deadline is None or delay <= deadline)
    unwanted = sum(not any(a <= moment <= b for a, b in labelled) for moment in opened)
    return YoungOutcome(caught, unwanted, delay)


def young_nab_episodes(
    series: Sequence[tuple[datetime, int]], windows: Sequence[tuple[datetime, datetime]], config: DetectorConfig
) -> list[YoungOutcome]:
    """Each NAB window lived by a brand first watched ``YOUNG_HISTORY`` before it (caught anywhere in the window)."""
    config = replace(config, bucket=bucket_width(list(series)))
    outcomes = []
    for window in windows:
        first = window[0] - YOUNG_HISTORY
        state = DetectorState.fresh("series", config)
        opened: list[datetime] = []
        for moment, value in series:
            if moment < first or moment > window[1]:
                continue
            state, events = step(state, Bucket(start=moment, negative=value, total=value), config)
            opened += [e.opened_at for e in events if e.event is IncidentEventType.OPENED]
        outcomes.append(_young_outcome(opened, window, windows, None))
    return outcomes


def young_stream_episodes(
    mentions: Sequence[ScoredMention], known: Sequence[KnownIncident], config: DetectorConfig
) -> list[YoungOutcome]:
    """Each labelled window of a real stream lived by a brand first watched ``YOUNG_HISTORY`` before it.

    Caught when an incident opens within ``DEADLINE`` of the window's start,
    as the whole stream is judged.
    """
    windows = [(k.start, k.end) for k in known]
    outcomes = []
    for window in windows:
        part = [m for m in mentions if window[0] - YOUNG_HISTORY <= m.created_at <= window[1]]
        outcomes.append(_young_outcome(opened_incidents(part, config), window, windows, DEADLINE))
    return outcomes


def with_young(full: FoldResult, outcomes: Sequence[YoungOutcome]) -> FoldResult:
    """A fold's result as the mean of its whole replay and its young-brand episodes (unchanged without episodes)."""
    if not outcomes:
        return full
    young = young_score(outcomes)
    caught = sum(o.caught for o in outcomes)
    detail = f"{full.detail}; young: {caught}/{len(outcomes)} caught, {sum(o.unwanted for o in outcomes)} unwanted"
    return FoldResult((full.score + young) / 2, detail, full.low_fp, full.score, young)


def synthetic_fold(config: DetectorConfig, quick: bool = False) -> FoldResult:
    """The synthetic suite as one fold: recall, false incidents, and the five-minute target for sudden storms."""
    summary = run_suite(config, quick_suite() if quick else None)
    false = sum(r.false_incidents for r in summary.results)
    sudden = summary.median_delay_by_shape.get("sudden")
    late = sudden is not None and sudden > SUDDEN_DELAY_MINUTES
    score = 0.0 if late else 100.0 * summary.recall - FALSE_ALARM_COST * false
    shown = "—" if sudden is None else f"{sudden:g} min"
    return FoldResult(score, f"recall {summary.recall:.0%}, sudden storms median {shown}, {false} false incidents")


def run_folds(
    nab_dir: Path, streams_dir: Path, config: DetectorConfig, labels: Path = DEFAULT_LABELS, quick: bool = False
) -> dict[str, FoldResult]:
    """Every fold under one configuration."""
    folds: dict[str, FoldResult] = {}
    windows_file = nab_dir / "realTweets_windows.json"
    if windows_file.is_file():
        labelled = json.loads(windows_file.read_text())
        for name, scores in score_every_series(nab_dir, config, anomaly_scores=False).items():
            standard, low_fp = normalised([scores["standard"]]), normalised([scores["low-FP"]])
            detail = (
                f"{scores['standard'].detected_windows}/{scores['standard'].windows} windows, "
                f"{scores['standard'].false_positives} false positives"
            )
            windows = nab_windows(labelled[name])
            young = young_nab_episodes(read_series(nab_dir / name), windows, config)
            folds[Path(name).stem.removeprefix("Twitter_volume_")] = with_young(
                FoldResult(standard, detail, low_fp), young
            )
    streams = stream_mentions(streams_dir)
    known = load_known(labels)
    for name, outcome in run_streams(streams, config, labels).items():
        young = young_stream_episodes(streams[name], [k for k in known if k.brand == name], config)
        folds[name] = with_young(stream_fold(outcome), young)
    folds["synthetic"] = synthetic_fold(config, quick)
    return folds


@dataclass(frozen=True)
class Validation:
    """Leave-one-stream-out results: per fold the point chosen without it and its result with that point."""

    chosen: dict[str, Setting]
    held_out: dict[str, FoldResult]
    shipped: Setting
    in_sample: dict[str, FoldResult]

    @property
    def mean(self) -> float:
        """The mean held-out score over the folds."""
        return mean(r.score for r in self.held_out.values())

    @property
    def worst(self) -> tuple[str, float]:
        """The fold with the lowest held-out score, and that score."""
        name = min(self.held_out, key=lambda fold: self.held_out[fold].score)
        return name, self.held_out[name].score


def _run_point(args: tuple[Path, Path, DetectorConfig, Path, bool]) -> dict[str, FoldResult]:
    return run_folds(*args)


def validate(
    nab_dir: Path,
    streams_dir: Path,
    base: DetectorConfig,
    grid: Grid = GRID,
    labels: Path = DEFAULT_LABELS,
    quick: bool = False,
    workers: int | None = None,
) -> Validation:
    """Run every grid point on every fold (in parallel over the machine's cores) and choose per held-out fold."""
    points = grid_points(grid)
    jobs = [(nab_dir, streams_dir, configured(base, point), labels, quick) for point in points]
    with ProcessPoolExecutor(max_workers=workers or min(len(jobs), os.cpu_count() or 1)) as pool:
        runs = dict(zip(points, pool.map(_run_point, jobs), strict=True))
    folds = list(next(iter(runs.values())))

    def pooled(point: Setting, names: list[str]) -> float:
        return mean(runs[point][name].score for name in names)

    chosen: dict[str, Setting] = {}
    held_out: dict[str, FoldResult] = {}
    for fold in folds:
        others = [other for other in folds if other != fold]
        best = max(points, key=lambda point: pooled(point, others))
        chosen[fold], held_out[fold] = best, runs[best][fold]
    shipped = max(points, key=lambda point: pooled(point, folds))
    return Validation(chosen, held_out, shipped, runs[shipped])


def nab_pooled(results: Mapping[str, FoldResult]) -> tuple[float, float]:
    """The mean NAB standard and low-FP scores (whole series) over the NAB folds among ``results``."""
    nab = [r for r in results.values() if r.low_fp is not None]
    if not nab:
        return 0.0, 0.0
    standard = mean(r.score if r.whole is None else r.whole for r in nab)
    return standard, mean(r.low_fp for r in nab if r.low_fp is not None)


SHORT_NAMES = {
    "rise_evidence": "young rise evidence",
    "calibration_ceiling": "ceiling",
    "memory.prior_days": "prior days",
    "incident_level_halflife": "level half-life (d)",
    "dispersion_halflife": "spread half-life (d)",
}


def point_words(point: Setting) -> str:
    """A grid point as a person reads it (a ceiling of 1000 or more is none)."""
    return ", ".join(
        f"{SHORT_NAMES.get(name, name)} " + ("none" if value >= 1000 else f"{value:g}") for name, value in point
    )


def day_to_day_spread(hourly: Sequence[float], hours: int = 6, least: float = 5.0) -> float | None:
    """A stream's day-to-day spread on a log scale beyond Poisson noise, for windows of ``hours``.

    Each window of each day from the fifth is compared with the median of the
    same window on up to 14 previous days (as the day-scale horizons compare
    it), where that median is at least ``least``; the spread is the median
    absolute deviation of the log ratios (times 1.4826, robust to the
    stream's own surges) with the median Poisson part taken out. None when
    no window qualifies.
    """
    counts = np.asarray(hourly, dtype=float)
    ratios, poisson = [], []
    for day in range(4, len(counts) // 24):
        for first in range(0, 24, hours):
            sums = [counts[(day - back) * 24 + first : (day - back) * 24 + first + hours].sum() for back in range(15)]
            sums = sums[: day + 1]
            normal = float(np.median(sums[1:]))
            if normal >= least:
                ratios.append(math.log((sums[0] + 0.5) / (normal + 0.5)))
                poisson.append(1 / (normal + 0.5))
    if not ratios:
        return None
    deviation = 1.4826 * float(np.median(np.abs(np.asarray(ratios) - np.median(ratios))))
    return math.sqrt(max(deviation**2 - float(np.median(poisson)), 0.0))


def hourly_negatives(mentions: Sequence[ScoredMention]) -> list[int]:
    """Negative mentions per clock hour from the first mention's day to the last's."""
    negative = [m.created_at for m in mentions if m.label is Sentiment.NEGATIVE]
    if not negative:
        return []
    first = min(negative).replace(hour=0, minute=0, second=0, microsecond=0)
    counts = [0] * (int((max(negative) - first) / timedelta(hours=1)) + 1)
    for moment in negative:
        counts[int((moment - first) / timedelta(hours=1))] += 1
    return counts


def spreads_across_streams(nab_dir: Path, streams_dir: Path) -> dict[str, float | None]:
    """Each real stream's day-to-day spread of six-hour windows: what the prior on a young brand's spread learns from.

    ``memory.prior_day_spread`` is their median (rounded), printed by ``make eval-detector``.
    """
    found: dict[str, float | None] = {}
    for path in sorted((nab_dir / "realTweets").glob("*.csv")):
        series = read_series(path)
        first = series[0][0].replace(hour=0, minute=0, second=0, microsecond=0)
        hourly = [0.0] * (int((series[-1][0] - first) / timedelta(hours=1)) + 1)
        for moment, value in series:
            hourly[int((moment - first) / timedelta(hours=1))] += value
        found[path.stem.removeprefix("Twitter_volume_")] = day_to_day_spread(hourly)
    for name, mentions in stream_mentions(streams_dir).items():
        found[name] = day_to_day_spread(hourly_negatives(mentions))
    return found
