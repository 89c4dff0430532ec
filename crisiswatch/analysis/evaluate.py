"""``make eval-detector``: the detector scored with the NAB rules on the shared tweet-volume series.

The figure that predicts unseen streams is the cross-validated one: the
settings chosen on data are chosen without the series they are scored on
(leave one series out), and the held-out scores are pooled. The in-sample
figure, settings chosen on all five, is reported beside it.
"""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from crisiswatch.detection.config import DetectorConfig

from .counts import detect, read_series
from .nab import PROFILES, SeriesScore, normalised, score_series

TUNED = {"calibration_return_days": (7.0, 14.0, 21.0, 42.0, 90.0), "open_surprise_floor": (8.0, 10.0, 12.0)}
"""The detector settings chosen by looking at the NAB series, and the values tried (docs/detector.md).

The floor stops at 12: from 14 up, sudden storms in the synthetic suite are
seen later than the product's five minutes, whatever NAB prefers.
"""
QUICK_GRID = {"open_surprise_floor": (10.0, 12.0)}
"""A small grid for a quick run of the same protocol (tests)."""

NAB_ANCHORS = {
    "ARTime": (82.0, 69.9, 88.0),
    "CAD OSE": (78.9, 77.2, 80.9),
    "Numenta HTM": (76.9, 65.7, 82.2),
    "Skyline": (67.6, 39.2, 78.4),
    "Twitter ADVec": (59.6, 30.8, 70.7),
    "windowed Gaussian": (52.5, 9.0, 68.3),
}


@dataclass(frozen=True)
class NabResult:
    """Normalised scores per profile and per-series detail."""

    scores: dict[str, float]
    detail: dict[str, dict[str, object]]


def _windows(raw: list[list[str]]) -> list[tuple[datetime, datetime]]:
    return [tuple(datetime.fromisoformat(t).replace(tzinfo=UTC) for t in pair) for pair in raw]  # type: ignore[misc]


def evaluate_nab(nab_dir: Path, config: DetectorConfig) -> NabResult:
    """Score the detector on every series listed in ``realTweets_windows.json`` under ``nab_dir``."""
    scored = score_every_series(nab_dir, config)
    per_profile = {p.name: [scores[p.name] for scores in scored.values()] for p in PROFILES}
    detail = {
        Path(name).stem: {
            "windows": scores["standard"].windows,
            "detected": scores["standard"].detected_windows,
            "false_positives": scores["standard"].false_positives,
        }
        for name, scores in scored.items()
    }
    return NabResult({name: normalised(scores) for name, scores in per_profile.items()}, detail)


def score_every_series(nab_dir: Path, config: DetectorConfig) -> dict[str, dict[str, SeriesScore]]:
    """Each labelled series' NAB scores (per profile) for one detector configuration."""
    labels = json.loads((nab_dir / "realTweets_windows.json").read_text())
    scored: dict[str, dict[str, SeriesScore]] = {}
    for name, windows in sorted(labels.items()):
        points = list(detect(read_series(nab_dir / name), config))
        alerts = [p.alert for p in points]
        timestamps = [p.timestamp for p in points]
        scored[name] = {p.name: score_series(alerts, timestamps, _windows(windows), p) for p in PROFILES}
    return scored


Setting = tuple[tuple[str, float], ...]
"""One point of the grid: (setting name, value) pairs."""


@dataclass(frozen=True)
class CrossValidation:
    """Leave-one-series-out NAB scores: each series scored with the settings chosen on the other four.

    ``scores`` and ``in_sample`` are per profile; ``chosen`` names, per
    profile and held-out series, the grid point the other series preferred;
    ``in_sample_choice`` is the point all series prefer together (the one a
    release would ship).
    """

    scores: dict[str, float]
    in_sample: dict[str, float]
    chosen: dict[str, dict[str, Setting]]
    in_sample_choice: dict[str, Setting]


def cross_validate(nab_dir: Path, base: DetectorConfig, grid: dict[str, tuple[float, ...]]) -> CrossValidation:
    """Choose the grid's settings without each series, score it with them, and pool the held-out scores.

    Every grid point is run once over every series (in parallel over the
    machine's cores); the choice for a held-out series maximises the
    normalised score of the others under the same profile.
    """
    points: list[Setting] = [tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    configs = [replace(base, **{name: _typed(getattr(base, name), value) for name, value in point}) for point in points]
    with ProcessPoolExecutor(max_workers=min(len(configs), os.cpu_count() or 1)) as pool:
        runs = dict(zip(points, pool.map(score_every_series, [nab_dir] * len(configs), configs), strict=True))
    series = sorted(next(iter(runs.values())))
    scores: dict[str, float] = {}
    in_sample: dict[str, float] = {}
    chosen: dict[str, dict[str, Setting]] = {}
    in_sample_choice: dict[str, Setting] = {}
    for profile in (p.name for p in PROFILES):

        def pooled(point: Setting, names: list[str], profile: str = profile) -> float:
            return normalised([runs[point][name][profile] for name in names])

        chosen[profile] = {}
        held_out: list[SeriesScore] = []
        for name in series:
            others = [other for other in series if other != name]
            best = max(points, key=lambda point: pooled(point, others))
            chosen[profile][Path(name).stem] = best
            held_out.append(runs[best][name][profile])
        scores[profile] = normalised(held_out)
        in_sample_choice[profile] = max(points, key=lambda point: pooled(point, series))
        in_sample[profile] = pooled(in_sample_choice[profile], series)
    return CrossValidation(scores, in_sample, chosen, in_sample_choice)


def _typed(default: object, value: float) -> object:
    return type(default)(value) if isinstance(default, int | float) else value
