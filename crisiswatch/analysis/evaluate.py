"""The detector scored with the NAB rules on the shared tweet-volume series (one fold each in :mod:`.validation`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crisiswatch.detection.config import DetectorConfig

from .counts import detect, read_series
from .nab import PROFILES, SeriesScore, normalised, score_series

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


def nab_windows(raw: list[list[str]]) -> list[tuple[datetime, datetime]]:
    """A series' labelled windows as read from ``realTweets_windows.json`` (naive times are UTC)."""
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


def score_every_series(
    nab_dir: Path, config: DetectorConfig, anomaly_scores: bool = True
) -> dict[str, dict[str, SeriesScore]]:
    """Each labelled series' NAB scores (per profile) for one configuration (``anomaly_scores``: see detect)."""
    labels = json.loads((nab_dir / "realTweets_windows.json").read_text())
    scored: dict[str, dict[str, SeriesScore]] = {}
    for name, windows in sorted(labels.items()):
        points = list(detect(read_series(nab_dir / name), config, anomaly_scores))
        alerts = [p.alert for p in points]
        timestamps = [p.timestamp for p in points]
        scored[name] = {p.name: score_series(alerts, timestamps, nab_windows(windows), p) for p in PROFILES}
    return scored
