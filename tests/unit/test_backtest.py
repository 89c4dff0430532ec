"""NAB scoring and the counts backtest: the offline path runs the live detector's code."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crisiswatch.analysis.counts import detect
from crisiswatch.analysis.nab import PROFILES, normalised, scaled_sigmoid, score_series
from crisiswatch.cli import app
from crisiswatch.detection.config import DetectorConfig

from ..conftest import SHARED_DATA

STANDARD = PROFILES[0]
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _times(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=5 * i) for i in range(n)]


def test_the_reward_curve_matches_nab() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866, abs=1e-4)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(3.5) == -1.0


def test_null_and_perfect_detectors_score_0_and_100() -> None:
    times = _times(2000)
    windows = [(times[1000], times[1100]), (times[1500], times[1600])]
    perfect = [i in (1000, 1500) for i in range(2000)]
    null = [False] * 2000
    assert normalised([score_series(perfect, times, windows, STANDARD)]) == pytest.approx(100.0)
    assert normalised([score_series(null, times, windows, STANDARD)]) == pytest.approx(0.0)


def test_false_positives_cost_and_probation_is_free() -> None:
    times = _times(2000)
    windows = [(times[1000], times[1100])]
    early = score_series([i in (10, 1000) for i in range(2000)], times, windows, STANDARD)
    assert early.false_positives == 0, "the first 15% is probation"
    before = score_series([i in (800, 1000) for i in range(2000)], times, windows, STANDARD)
    assert before.raw == pytest.approx(scaled_sigmoid(-1.0) - STANDARD.fp)


def _rhythmic(days: int, seed: int = 5) -> tuple[list[datetime], list[int]]:
    times = _times(days * 288)
    rng = np.random.default_rng(seed)
    rates = [20 * (1 + 0.7 * math.cos(2 * math.pi * (t.hour - 14) / 24)) for t in times]
    return times, rng.poisson(rates).tolist()


def test_a_daily_rhythm_is_learned_not_alerted_on() -> None:
    times, values = _rhythmic(days=7)
    alerts = [p.timestamp for p in detect(list(zip(times, values, strict=True)), DetectorConfig()) if p.alert]
    assert alerts == []


def test_a_spike_on_top_of_the_rhythm_is_alerted_at_once() -> None:
    times, values = _rhythmic(days=4)
    spike = 3 * 288 + 100
    for i in range(spike, spike + 6):
        values[i] += 120
    points = list(detect(list(zip(times, values, strict=True)), DetectorConfig()))
    alerted = [i for i, p in enumerate(points) if p.alert]
    assert alerted and alerted[0] in (spike, spike + 1)
    assert all(0.0 <= p.anomaly_score <= 1.0 for p in points)
    assert points[spike + 1].anomaly_score > 0.5 > points[spike - 10].anomaly_score
    assert all(p.anomaly_score == 0.0 for p in points[:20]), "nothing is judged while the baseline warms up"


def test_backtest_command_writes_the_nab_columns(tmp_path: Path) -> None:
    times, values = _rhythmic(days=2)
    series = tmp_path / "series.csv"
    series.write_text(
        "timestamp,value\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S},{v}\n" for t, v in zip(times, values, strict=True))
    )
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["backtest", "--counts", str(series), "--output", str(output)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(output.open()))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert len(rows) == len(values)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "nab").is_dir(), reason="../shared/data is not present")
def test_the_eval_command_scores_the_shared_series() -> None:
    arguments = ["eval-detector", "--nab", str(SHARED_DATA / "nab"), "--streams", str(SHARED_DATA / "streams")]
    result = CliRunner().invoke(app, [*arguments, "--quick"])
    assert result.exit_code == 0, result.output
    assert "Leave one stream out" in result.output and "worst fold" in result.output and "ARTime" in result.output
    assert "comcast" in result.output and "apple" in result.output and "synthetic" in result.output
    assert "sustained rises" in result.output
