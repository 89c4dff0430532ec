"""Day-scale detection: horizons against previous days, the weekly rhythm, learning, seeding and team verdicts."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime, timedelta

import numpy as np

from crisiswatch.contracts.schemas import ActionKind, IncidentAction, IncidentEventType
from crisiswatch.detection.actions import apply_action
from crisiswatch.detection.calibration import normal_levels, open_thresholds
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import step, warm_start
from crisiswatch.detection.memory import FLAT_WEEK, hour_of_week
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket

CONFIG = DetectorConfig(bucket=timedelta(minutes=5))
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
PER_HOUR = 12


def _rates(days: int, per_hour: float, weekend: float = 1.0) -> np.ndarray:
    """Expected negatives per bucket over ``days`` from a Monday: a daily rhythm, weekends at ``weekend``."""
    starts = np.arange(days * PER_HOUR * 24)
    hours = (starts / PER_HOUR) % 24
    weekday = (starts // (PER_HOUR * 24)) % 7
    rhythm = 1 + 0.5 * np.cos(2 * np.pi * (hours - 14) / 24)
    return per_hour / PER_HOUR * rhythm * np.where(weekday >= 5, weekend, 1.0)


def _run(negatives: np.ndarray, state: DetectorState | None = None, start: datetime = MONDAY, config=CONFIG):
    state = state or DetectorState.fresh("acme", config)
    opened = []
    for index, negative in enumerate(negatives.tolist()):
        bucket = Bucket(start=start + index * config.bucket, negative=negative, total=4 * negative + 20)
        state, incidents = step(state, bucket, config)
        opened += [i for i in incidents if i.event is IncidentEventType.OPENED]
    return state, opened


RISE_ONSET = 21 * 24 * PER_HOUR + 8 * PER_HOUR
"""Three weeks of a daily rhythm, then a rise at 08:00 on the fourth Monday (bucket index)."""


def _rise(factor: np.ndarray) -> np.ndarray:
    """Negatives per bucket: the calm three weeks, then 12 hours at ``factor`` times the usual rate."""
    rates = _rates(22, per_hour=20)
    rates[RISE_ONSET : RISE_ONSET + 12 * PER_HOUR] *= factor
    return np.random.default_rng(4).poisson(rates[: RISE_ONSET + 12 * PER_HOUR])


@functools.cache
def _learnt_before_the_rise() -> tuple[DetectorState, tuple]:
    """The state (and incidents) after the calm weeks both rise tests share, stepped through once per process.

    Each rise draws the same counts up to its onset (the generator draws bucket by bucket), so a test
    continues from this state exactly as a run over the whole series would.
    """
    state, opened = _run(_rise(np.ones(12 * PER_HOUR))[:RISE_ONSET])
    return state, tuple(opened)


def _run_rise(counts: np.ndarray) -> list:
    """The incidents opened over a rise series: the shared calm weeks, then this series' last 12 hours."""
    state, before = _learnt_before_the_rise()
    _, after = _run(counts[RISE_ONSET:], state=state, start=MONDAY + RISE_ONSET * CONFIG.bucket)
    return [*before, *after]


def test_a_sustained_doubling_over_twelve_hours_is_caught_by_a_day_scale_horizon() -> None:
    counts = _rise(np.full(12 * PER_HOUR, 2.0))
    opened = _run_rise(counts)
    caught = [d for d in opened if d.opened_at >= MONDAY + RISE_ONSET * CONFIG.bucket]
    assert caught, "a 12-hour doubling went unseen"
    assert caught[0].horizon.endswith(" h") and "normal for a" in caught[0].rule
    assert [d for d in opened if d.opened_at < MONDAY + RISE_ONSET * CONFIG.bucket] == [], "false alarm before the rise"


def test_a_slowly_building_doubling_is_caught_by_a_horizon_hours_before_the_fast_windows() -> None:
    ramp = np.clip(np.arange(12 * PER_HOUR) / (6 * PER_HOUR), 0, 1)
    counts = _rise(1 + ramp)
    fast_only = dataclasses.replace(CONFIG, memory=dataclasses.replace(CONFIG.memory, horizons=()))
    _, fast = _run(counts, config=fast_only)
    both = _run_rise(counts)
    assert both and both[0].horizon.endswith(" h") and "normal for a" in both[0].rule
    if fast:
        assert both[0].opened_at <= fast[0].opened_at - timedelta(hours=2)


def test_a_calm_first_day_is_silent_and_the_brand_reads_as_learning() -> None:
    rng = np.random.default_rng(9)
    for per_hour in (2, 20, 200):
        state, opened = _run(rng.poisson(_rates(1, per_hour))[:-1])
        assert opened == [], f"alert on a calm first day at {per_hour}/h"
        assert state.learning(CONFIG), "a day of history ends the learning state, not less"
    assert not _run(rng.poisson(_rates(2, 20)))[0].learning(CONFIG)


def test_extreme_volume_alerts_even_while_learning() -> None:
    rng = np.random.default_rng(2)
    counts = rng.poisson(_rates(1, 20))
    counts[10 * PER_HOUR : 10 * PER_HOUR + 3] += 20
    _, opened = _run(counts[: 10 * PER_HOUR + 3])
    assert len(opened) == 1
    assert "still learning" in opened[0].rule


def test_a_weekend_trough_does_not_turn_monday_morning_into_an_incident() -> None:
    rng = np.random.default_rng(5)
    state, opened = _run(rng.poisson(_rates(29, per_hour=20, weekend=0.4)))
    mondays = [d for d in opened if d.opened_at.weekday() == 0]
    assert mondays == [], [d.rule for d in mondays]
    assert len(opened) <= 1
    weekly = state.memory.weekly
    assert weekly is not None and weekly != FLAT_WEEK
    saturday_noon = hour_of_week(MONDAY + timedelta(days=5, hours=12))
    tuesday_noon = hour_of_week(MONDAY + timedelta(days=1, hours=12))
    assert weekly[saturday_noon] < 0.6 < 1.0 < weekly[tuesday_noon]


def test_not_a_crisis_raises_the_bar_for_a_repeat_of_the_same_size_only() -> None:
    rng = np.random.default_rng(6)
    state, opened = _run(rng.poisson(_rates(9, per_hour=60)))
    assert opened == []
    surge = np.array([20, 21, 20])
    clock = [MONDAY + 9 * 24 * 60 * timedelta(minutes=1)]

    def calm_then(state: DetectorState, extra: np.ndarray) -> tuple[DetectorState, list]:
        """A calm day whose last buckets are ``extra``: each surge lands at the same time of day."""
        counts = np.concatenate([rng.poisson(_rates(1, per_hour=60))[: 24 * PER_HOUR - len(extra)], extra])
        state, opened = _run(counts, state=state, start=clock[0])
        clock[0] += len(counts) * CONFIG.bucket
        return state, opened

    state, first = calm_then(state, surge)
    assert len(first) == 1
    verdict = IncidentAction(
        incident_id=first[0].incident_id,
        brand="acme",
        kind=ActionKind.NOT_A_CRISIS,
        user_id="U1",
        acted_at=first[0].opened_at,
    )
    state, _, closed = apply_action(state, verdict, CONFIG)
    assert closed[0].event is IncidentEventType.RESOLVED and closed[0].false_alarm
    assert state.incident is None and state.false_alarms
    state = state.model_copy(update={"cooldown_until": None})
    _, repeat = calm_then(state, surge)
    assert repeat == [], "the same surge alerted again after the team called it normal"
    _, larger = calm_then(state, 2 * surge)
    assert len(larger) == 1, "a clearly larger surge must still alert"
    today = clock[0].date()
    assert normal_levels(state, CONFIG, today), "the verdict is remembered per window"
    assert normal_levels(state, CONFIG, today + timedelta(days=CONFIG.memory.memory_days)) == {}, "for four weeks"
    assert open_thresholds(state, CONFIG) == open_thresholds(state.model_copy(update={"false_alarms": []}), CONFIG)


def test_a_warm_start_keeps_what_is_normal_and_drops_the_incident() -> None:
    rng = np.random.default_rng(8)
    counts = rng.poisson(_rates(3, per_hour=20))
    counts[-24:] += 15
    state, opened = _run(counts)
    assert state.incident is not None and opened
    warm = warm_start(state)
    assert warm.incident is None and warm.cooldown_until is None and warm.recent == []
    assert warm.memory.negative == state.memory.negative and warm.baseline == state.baseline
    assert not warm.learning(CONFIG)


def test_a_state_saved_before_the_hourly_memory_existed_still_loads_and_steps() -> None:
    rng = np.random.default_rng(1)
    state, _ = _run(rng.poisson(_rates(1, per_hour=20)))
    stored = state.model_dump(mode="json")
    for name in ("memory", "false_alarms"):
        del stored[name]
    restored = DetectorState.model_validate(stored)
    assert restored.memory.hour is None
    later = MONDAY + 24 * 60 * timedelta(minutes=1)
    stepped, _ = _run(rng.poisson(_rates(1, per_hour=20)), state=restored, start=later)
    assert stepped.memory.hours_known == 23


def test_the_hourly_memory_survives_a_changelog_round_trip_and_stays_bounded() -> None:
    # A week's memory (four by default) fills and bounds the same way in a third of the steps.
    week = dataclasses.replace(CONFIG, memory=dataclasses.replace(CONFIG.memory, memory_days=7))
    days = 10
    assert days * 24 > week.memory.keep_hours
    rng = np.random.default_rng(3)
    state, _ = _run(rng.poisson(_rates(days, per_hour=2)), config=week)
    assert state.memory.hours_known == week.memory.keep_hours
    restored = DetectorState.model_validate_json(state.model_dump_json())
    assert restored.memory.negative == state.memory.negative
    assert restored.memory.weekly is None, "derived factors are not stored"
    again, _ = step(restored, Bucket(start=MONDAY + timedelta(days=days), negative=0, total=5), week)
    assert again.memory.weekly is not None


def test_a_storm_that_is_over_does_not_reopen_through_the_day_scale_horizons() -> None:
    rng = np.random.default_rng(11)
    rates = _rates(12, per_hour=20)
    storm = 10 * 24 * PER_HOUR + 10 * PER_HOUR
    rates[storm : storm + 3 * PER_HOUR] *= 20
    _, opened = _run(rng.poisson(rates))
    after = [d for d in opened if d.opened_at > MONDAY + (storm + 3 * PER_HOUR) * CONFIG.bucket]
    assert len(opened) - len(after) >= 1, "the storm itself opens an incident"
    assert after == [], [d.rule for d in after]


def test_a_brand_without_complaints_is_not_alarmed_by_a_handful_over_a_day() -> None:
    state, _ = _run(np.zeros(9 * 24 * PER_HOUR, dtype=int))
    few = np.zeros(24 * PER_HOUR, dtype=int)
    few[:: 3 * PER_HOUR] = 1
    _, opened = _run(few, state=state, start=MONDAY + timedelta(days=9))
    assert opened == []


def test_hours_nobody_saw_restart_the_memory_and_old_hours_are_left_out() -> None:
    rng = np.random.default_rng(12)
    state, _ = _run(rng.poisson(_rates(5, per_hour=20)))
    known = state.memory.hours_known
    older, _ = step(state, Bucket(start=MONDAY + timedelta(days=2), negative=50, total=60), CONFIG)
    assert older.memory.negative == state.memory.negative and older.memory.negative_now == state.memory.negative_now
    later, _ = step(state, Bucket(start=MONDAY + timedelta(days=8), negative=1, total=5), CONFIG)
    assert known > 100 and later.memory.hours_known == 0, "two days unseen are not two quiet days"
    assert state.memory.weekly is not None, "the caller's state keeps what it had"
    loaded = DetectorState.model_validate_json(state.model_dump_json())
    stepped, _ = step(loaded, Bucket(start=MONDAY + timedelta(days=5), negative=1, total=5), CONFIG)
    assert loaded.memory.weekly is None and stepped.memory.weekly is not None, "step leaves its input as it was"
