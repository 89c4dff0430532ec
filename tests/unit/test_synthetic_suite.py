"""The scenario generator's weekly rhythm and day-to-day variation, sustained rises, and the suite's quick subset."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from rich.table import Table

from crisiswatch.analysis.synthetic import (
    WEEKLY_RHYTHM,
    SustainedPlan,
    quick_suite,
    render_suite,
    render_sustained,
    rise_cases,
    run_suite,
    run_sustained,
)
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.ingest.scenario import (
    BrandTraffic,
    Crisis,
    Scenario,
    bucket_counts,
    bucket_seconds,
    demo_scenario,
    expected_counts,
    generate,
)

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# sha256 of the demo stream (its three English brands and their storm, as before the Hebrew brand joined) as the
# generator wrote it before weekly rhythm, day-to-day variation and languages existed.
DEMO_DIGEST = "70774b762b1eb5ad9f9c0017a75ff8e8d6734304e9a3b8e65156a372420dcbe8"


def weekly(days: int = 7, **changes: object) -> Scenario:
    scenario = Scenario(
        "weekly",
        MONDAY,
        timedelta(days=days),
        (BrandTraffic("a", "A", "A", 120.0), BrandTraffic("b", "B", "B", 60.0)),
        seed=11,
    )
    return replace(scenario, **changes)


def minutes(moment: datetime, scenario: Scenario) -> int:
    return round((moment - scenario.start) / MINUTE)


def test_defaults_reproduce_the_stream_from_before_the_weekly_rhythm() -> None:
    demo = demo_scenario()
    demo = replace(demo, brands=demo.brands[:3], crises=demo.crises[:1])
    records = list(generate(demo))
    explicit = list(generate(replace(demo, weekday_factors=(1.0,) * 7, day_to_day_variation=0.0)))
    assert records == explicit
    assert hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest() == DEMO_DIGEST


def test_weekday_factors_multiply_the_base_rate_by_weekday() -> None:
    factors = (1.0, 2.0, 1.0, 1.0, 1.0, 0.6, 0.3)
    plain, shaped = expected_counts(weekly(), MINUTE), expected_counts(weekly(weekday_factors=factors), MINUTE)
    for brand in ("a", "b"):
        ratio = (shaped[brand].negative / plain[brand].negative).reshape(7, 1440)
        assert np.allclose(ratio, np.asarray(factors)[:, None])
    moment = MONDAY + timedelta(days=5, hours=14)
    assert weekly(weekday_factors=factors).rhythm(moment) == pytest.approx(0.6 * 1.6)


def test_generate_follows_the_weekday_factors() -> None:
    scenario = weekly(days=2, weekday_factors=(1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0))
    per_day = [0, 0]
    for record in generate(scenario):
        per_day[datetime.fromisoformat(str(record["created_at"])).weekday()] += 1
    assert 2.7 < per_day[1] / per_day[0] < 3.3


def test_day_to_day_variation_is_a_lognormal_multiplier_per_brand_and_day() -> None:
    assert np.array_equal(weekly().day_multipliers(), np.ones((8, 2)))
    multipliers = weekly(days=400, day_to_day_variation=0.1).day_multipliers()
    assert multipliers.shape == (401, 2)
    assert np.std(np.log(multipliers)) == pytest.approx(0.1, abs=0.01)
    assert np.mean(multipliers) == pytest.approx(1.0, abs=0.01)
    assert not np.allclose(multipliers[:, 0], multipliers[:, 1])

    varied = weekly(days=3, day_to_day_variation=0.1)
    ratio = expected_counts(varied, MINUTE)["a"].negative / expected_counts(weekly(days=3), MINUTE)["a"].negative
    assert np.allclose(ratio.reshape(3, 1440), varied.day_multipliers()[:3, :1])


def test_the_rhythm_is_the_same_per_record_and_per_bucket() -> None:
    scenario = weekly(days=8, weekday_factors=WEEKLY_RHYTHM, day_to_day_variation=0.2)
    seconds = bucket_seconds(scenario.start, MINUTE, 8 * 1440)
    vectorised = scenario.rhythms(seconds)
    multipliers = scenario.day_multipliers()
    for minute in range(0, 8 * 1440, 97):
        moment = scenario.start + minute * MINUTE
        for brand in range(2):
            scalar = scenario.rhythm(moment, multipliers[scenario.day_index(moment), brand])
            assert vectorised[minute, brand] == pytest.approx(scalar, rel=1e-12)


def test_generated_records_and_bucket_counts_follow_the_same_means() -> None:
    scenario = weekly(days=1, weekday_factors=WEEKLY_RHYTHM, day_to_day_variation=0.3)
    expected = sum(e.negative.sum() + e.other.sum() for e in expected_counts(scenario, MINUTE).values())
    records = sum(1 for _ in generate(scenario))
    counted = sum(int(total.sum()) for _, total in bucket_counts(scenario, MINUTE).values())
    for observed in (records, counted):
        assert abs(observed - expected) < 4 * math.sqrt(expected)


def test_the_old_crisis_shape_is_unchanged_and_fade_can_be_switched_off() -> None:
    crisis = Crisis("a", MONDAY, timedelta(hours=2), "outage", 240.0)
    assert crisis.rate_at(MONDAY - MINUTE) == 0.0
    assert crisis.rate_at(MONDAY + 5 * MINUTE) == pytest.approx(120.0)
    assert crisis.rate_at(MONDAY + timedelta(hours=1)) == pytest.approx(240.0)
    assert crisis.rate_at(MONDAY + timedelta(minutes=100)) == pytest.approx(120.0)
    assert crisis.rate_at(MONDAY + timedelta(hours=2)) == 0.0
    abrupt = replace(crisis, fade=timedelta(0))
    assert abrupt.rate_at(MONDAY + timedelta(minutes=119)) == 240.0


def test_a_sustained_rise_multiplies_the_normal_negatives_through_its_ramp_and_plateau() -> None:
    cases = rise_cases(SustainedPlan(runs=2, history=timedelta(days=14)))
    assert {(c.volume, c.multiple) for c in cases} == set(itertools.product(("low", "medium", "high"), (1.5, 2.0, 3.0)))
    for case in cases:
        crisis, scenario = case.crisis, case.scenario
        assert crisis.onset - scenario.start >= timedelta(days=14)
        assert timedelta(hours=1) <= crisis.ramp <= timedelta(hours=6)
        assert timedelta(hours=6) <= crisis.duration <= timedelta(hours=24)
        expected = expected_counts(scenario, MINUTE)[crisis.brand]
        ratio = expected.crisis / expected.negative
        assert ratio[minutes(crisis.onset - MINUTE, scenario)] == 0.0
        assert ratio[minutes(crisis.onset + crisis.ramp / 2, scenario)] == pytest.approx((case.multiple - 1) / 2)
        assert ratio[minutes(crisis.onset + crisis.ramp, scenario)] == pytest.approx(case.multiple - 1)
        assert ratio[minutes(crisis.end - MINUTE, scenario)] == pytest.approx(case.multiple - 1)
        if crisis.end < scenario.start + scenario.duration:
            assert ratio[minutes(crisis.end, scenario)] == 0.0
    mondays = [c for c in cases if c.crisis.onset.weekday() == 0]
    assert mondays and all(c.crisis.onset.hour < 12 for c in mondays)


def test_rises_on_one_background_share_their_history() -> None:
    group = [c for c in rise_cases(SustainedPlan(runs=1, history=timedelta(days=2))) if c.volume == "medium"]
    counts = [bucket_counts(c.scenario, MINUTE)[c.crisis.brand] for c in group]
    before = round((group[0].crisis.onset - group[0].scenario.start) / MINUTE)
    for negative, total in counts[1:]:
        assert np.array_equal(negative[:before], counts[0][0][:before])
        assert np.array_equal(total[:before], counts[0][1][:before])
    assert counts[0][0][before:].sum() < counts[-1][0][before:].sum()


@pytest.mark.slow
def test_the_quick_subset_runs_and_summarises() -> None:
    config = DetectorConfig()
    plan = SustainedPlan.quick()
    summary = run_sustained(config, plan)
    assert [(c.volume, c.multiple) for c in summary.cells] == list(
        itertools.product(("low", "medium", "high"), (1.5, 2.0, 3.0))
    )
    for cell in summary.cells:
        assert cell.runs == 1
        assert 0.0 <= cell.caught_share <= 1.0
        assert (cell.median_delay_hours is None) == (cell.caught == 0)
    assert len(summary.rises) == 9
    assert set(summary.false_incidents_per_brand_week_by_volume) == {"low", "medium", "high"}
    assert summary.false_incidents_per_brand_week >= 0
    assert set(summary.new_brand_alerts) == {"low", "medium", "high"}
    assert all(r.case.brand_weeks == pytest.approx(1 / 7) for r in summary.calm + summary.new_brands)

    tables = render_sustained(summary) + render_suite(run_suite(config, quick_suite()))
    assert all(isinstance(t, Table) for t in tables)
    assert [t.row_count for t in tables] == [9, 4, 3, 2, 5]
