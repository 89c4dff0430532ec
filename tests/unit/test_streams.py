"""The real recorded streams as validation folds: read right, labelled, and judged as the alerter would."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crisiswatch.analysis.compare import KnownIncident, load_known
from crisiswatch.analysis.streams import (
    APPLE_FILE,
    COMCAST_FILE,
    DEFAULT_LABELS,
    judge_stream,
    read_apple,
    read_comcast,
    run_streams,
    stream_mentions,
)
from crisiswatch.analysis.validation import (
    DEADLINE,
    YOUNG_HISTORY,
    FoldResult,
    day_to_day_spread,
    grid_points,
    stream_fold,
    with_young,
    young_nab_episodes,
)
from crisiswatch.detection.config import DetectorConfig

STREAMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "streams"
needs_streams = pytest.mark.skipif(not (STREAMS / COMCAST_FILE).is_file(), reason="../shared/data is not present")


def test_the_labelled_windows_name_their_reason_and_parse() -> None:
    known = load_known(DEFAULT_LABELS)
    assert [k.brand for k in known] == ["comcast"]
    assert known[0].start == datetime(2015, 6, 23, 10, tzinfo=UTC)


def test_a_stream_fold_scores_windows_opened_in_time_and_charges_unwanted_incidents() -> None:
    start = datetime(2015, 6, 23, 10, tzinfo=UTC)
    known = [KnownIncident("comcast", start, start + timedelta(days=2))]
    outcome = judge_stream("comcast", [start - timedelta(days=9), start + timedelta(hours=5)], known)
    assert outcome.delays == (timedelta(hours=5),) and len(outcome.unwanted) == 1
    assert stream_fold(outcome).score == 100 - 11
    late = judge_stream("comcast", [start + DEADLINE + timedelta(minutes=1)], known)
    assert stream_fold(late).score == 0
    assert stream_fold(judge_stream("apple", [], known)).score == 100


def test_the_grid_moves_grouped_settings_together() -> None:
    points = grid_points({("a",): ((1.0,), (2.0,)), ("b", "c"): ((3.0, 4.0), (5.0, 6.0))})
    assert points[0] == (("a", 1.0), ("b", 3.0), ("c", 4.0)) and len(points) == 4


def test_a_steady_stream_has_no_day_to_day_spread_beyond_poisson() -> None:
    assert day_to_day_spread([20] * (24 * 10)) == 0.0
    assert day_to_day_spread([0] * (24 * 10)) is None


@needs_streams
def test_comcast_dates_follow_the_ticket_order_and_hold_the_june_surge() -> None:
    events = read_comcast(STREAMS / COMCAST_FILE)
    days = Counter(e.at.date() for e in events)
    assert len(events) == 2223 and all(e.negative for e in events)
    assert min(days) >= date(2015, 4, 1) and max(days) <= date(2015, 6, 30)
    assert days[date(2015, 6, 23)] == 190 and days[date(2015, 6, 24)] == 218
    apple = read_apple(STREAMS / APPLE_FILE)
    assert len(apple) == 3804 and sum(e.negative for e in apple) == 1219


@pytest.mark.slow
@needs_streams
def test_the_shipped_detector_keeps_the_apple_week_calm_and_opens_the_comcast_surge_within_six_hours() -> None:
    outcomes = run_streams(stream_mentions(STREAMS), DetectorConfig())
    assert outcomes["apple"].unwanted == ()
    (delay,) = outcomes["comcast"].delays
    assert delay is not None and delay <= timedelta(hours=6)


def test_a_young_brand_episode_starts_three_days_before_its_window_and_charges_openings_outside_it() -> None:
    start = datetime(2026, 3, 10, tzinfo=UTC)
    buckets = [(start - YOUNG_HISTORY - timedelta(days=5) + timedelta(minutes=5 * i), 3) for i in range(12 * 24 * 10)]
    window = (start, start + timedelta(hours=12))
    storm = [
        (at, 300 if window[0] + timedelta(hours=2) <= at < window[0] + timedelta(hours=3) else n) for at, n in buckets
    ]
    (caught,) = young_nab_episodes(storm, [window], DetectorConfig())
    assert caught.caught and caught.unwanted == 0 and caught.delay is not None
    (calm,) = young_nab_episodes(buckets, [window], DetectorConfig())
    assert not calm.caught and calm.unwanted == 0
    whole = FoldResult(80.0, "whole")
    assert with_young(whole, [caught, calm]).score == (80.0 + 50.0) / 2
    assert with_young(whole, []) == whole
