"""Backtesting the detector on a count series (NAB format: ``timestamp,value`` per bucket).

The series' values are treated as the brand's negative-mention counts per
bucket and fed, bucket by bucket, through the same ``step`` function the live
alerter runs. Each bucket's ``anomaly_score`` is the detector's
:func:`alarm_ratio` ``r`` mapped to ``r / (1 + r)``: 0.5 when the most
surprising look-back window is at its opening threshold.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from statistics import median

from crisiswatch.contracts.schemas import IncidentEventType
from crisiswatch.detection.alarms import alarm_ratio
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket


@dataclass(frozen=True)
class CountPoint:
    """One bucket of a series and the detector's verdict on it."""

    timestamp: datetime
    value: int
    anomaly_score: float
    alert: bool


def read_series(path: Path) -> list[tuple[datetime, int]]:
    """Read ``timestamp,value`` rows (naive timestamps are taken as UTC)."""
    rows: list[tuple[datetime, int]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                moment = datetime.fromisoformat(row["timestamp"])
                rows.append((moment if moment.tzinfo else moment.replace(tzinfo=UTC), round(float(row["value"]))))
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}:{number}: expected timestamp,value ({error})") from None
    return rows


def bucket_width(series: list[tuple[datetime, int]]) -> timedelta:
    """The series' bucket width: the median gap between consecutive timestamps."""
    gaps = [(b[0] - a[0]).total_seconds() for a, b in pairwise(series)]
    if not gaps:
        raise ValueError("a series needs at least two rows")
    return timedelta(seconds=median(gaps))


def detect(
    series: list[tuple[datetime, int]], config: DetectorConfig, anomaly_scores: bool = True
) -> Iterator[CountPoint]:
    """Run the detector over the series; ``alert`` marks buckets where an incident opens or escalates.

    Without ``anomaly_scores`` every point's score is 0 (scoring alerts only needs
    the alerts, and the score costs as much as the detector itself).
    """
    config = replace(config, bucket=bucket_width(series))
    state = DetectorState.fresh("series", config)
    for moment, value in series:
        bucket = Bucket(start=moment, negative=value, total=value)
        state, incidents = step(state, bucket, config)
        alert = any(i.event in (IncidentEventType.OPENED, IncidentEventType.ESCALATED) for i in incidents)
        ratio = alarm_ratio(state, config) if anomaly_scores else 0.0
        yield CountPoint(moment, value, round(ratio / (1 + ratio), 6), alert)


def write_points(points: list[CountPoint], path: Path) -> None:
    """Write ``timestamp,value,anomaly_score,alert`` rows."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for point in points:
            writer.writerow(
                [point.timestamp.strftime("%Y-%m-%d %H:%M:%S"), point.value, point.anomaly_score, int(point.alert)]
            )
