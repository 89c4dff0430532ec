"""The detector's statistics and lifecycle, with no Kafka in sight."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import gumbel_r

from crisiswatch.contracts.schemas import IncidentEventType, ScoredMention, SentimentScores, Severity
from crisiswatch.detection.calibration import calibrated_threshold, open_thresholds
from crisiswatch.detection.config import DetectorConfig, Sensitivity
from crisiswatch.detection.count_laws import tail_surprise
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.memory import MemorySettings
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import AddResult, BrandBuckets, Bucket, add_mention, close_ready

CONFIG = DetectorConfig(
    bucket=timedelta(minutes=5), learning_period=timedelta(hours=2), open_surprise=8.0, open_surprise_floor=8.0
)
"""The statistics' tests judge from the two-hour warm-up on (the learning state has tests of its own), with a
threshold of 8 so their small surges stay small; the shipped threshold is chosen by ``make eval-detector``."""
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _buckets(negatives: list[int], totals: list[int] | None = None) -> list[Bucket]:
    totals = totals or [max(8, 4 * n) for n in negatives]
    return [
        Bucket(start=T0 + i * CONFIG.bucket, negative=n, total=t)
        for i, (n, t) in enumerate(zip(negatives, totals, strict=True))
    ]


def _run(buckets: list[Bucket], config: DetectorConfig = CONFIG, state: DetectorState | None = None):
    state = state or DetectorState.fresh("acme", config)
    events = []
    for bucket in buckets:
        state, incidents = step(state, bucket, config)
        events.extend(incidents)
    return state, events


def test_surprise_is_valid_below_one_mention_per_bucket_and_at_hundreds() -> None:
    assert tail_surprise(0, 0.3) == 0.0
    assert tail_surprise(1, 0.3) == pytest.approx(-np.log10(1 - np.exp(-0.3)), rel=1e-6)
    assert tail_surprise(4, 0.3) > 3
    assert tail_surprise(230, 200) < 2.5
    assert tail_surprise(300, 200) > 10


def test_steady_poisson_noise_raises_no_incident_over_a_week() -> None:
    rng = np.random.default_rng(3)
    for rate in (0.1, 1.0, 20.0):
        negatives = rng.poisson(rate, size=7 * 288).tolist()
        _, events = _run(_buckets(negatives, [n + 10 for n in negatives]))
        assert events == [], f"false alarm at rate {rate}"


def test_a_surge_opens_after_confirmation_and_resolves_after_quiet_buckets() -> None:
    calm = [1, 0, 2, 1, 1, 0, 1, 2] * 6
    state, events = _run(_buckets([*calm, 12, 15, 20, 18, 1, 0, 1, 1, 0, 2, 1, 1]))
    kinds = [e.event for e in events]
    assert kinds[0] is IncidentEventType.OPENED
    opened = events[0]
    assert opened.window_start == T0 + len(calm) * CONFIG.bucket, "the first surprising bucket starts the window"
    assert opened.observed_negative == 27 and opened.expected_negative < 3
    assert opened.rule.startswith("27 negative mentions in the last 10 min")
    assert kinds[-1] is IncidentEventType.RESOLVED
    assert state.incident is None


def test_a_growing_storm_escalates_once_the_escalation_gap_has_passed() -> None:
    calm = [1, 0, 2, 1, 1, 0, 1, 2] * 6
    storm = [5, 6, 7, 9, 12, 20, 40, 80, 120, 160, 200, 220, 240, 240]
    _, events = _run(_buckets([*calm, *storm]))
    kinds = [e.event for e in events]
    assert kinds == [IncidentEventType.OPENED, IncidentEventType.ESCALATED]
    opened, escalated = events
    assert escalated.window_end - opened.window_end >= CONFIG.escalation_gap
    assert escalated.severity.rank > opened.severity.rank
    assert escalated.revision == opened.revision + 1
    assert escalated.rule.startswith(f"severity rose to {escalated.severity.value}")


def test_complaints_that_crowd_out_other_talk_open_sooner_than_the_same_complaints_in_a_busier_stream() -> None:
    rng = np.random.default_rng(7)
    totals = rng.poisson(100, 4 * 288)
    negatives = rng.binomial(totals, 0.1)
    surge = np.random.default_rng(1).poisson(25, 8)
    usual_talk = np.random.default_rng(1).poisson(100, 8)
    _, crowded_events = _run(_buckets([*negatives, *surge], [*totals, *usual_talk]))
    _, busier_events = _run(_buckets([*negatives, *surge], [*totals, *(usual_talk * 2.5).astype(int)]))
    assert [e.event for e in crowded_events] == [IncidentEventType.OPENED]
    assert "share surprise" in crowded_events[0].rule
    assert crowded_events[0].negative_share > 2 * crowded_events[0].baseline_negative_share
    assert busier_events == [], "the same complaints in proportionally busier talk are not yet surprising"


def test_reach_raises_the_severity() -> None:
    calm = [1, 0, 2, 1, 1, 0, 1, 2] * 6
    storm = [_buckets([*calm, 12, 15, 20, 18])[-4 + i] for i in range(4)]
    seen_by_few = _run([*_buckets(calm), *storm])[1][0]
    loud = [Bucket(start=b.start, negative=b.negative, total=b.total, reach_negative=600_000) for b in storm]
    seen_by_millions = _run([*_buckets(calm), *loud])[1][0]
    assert seen_by_few.severity is not Severity.CRITICAL
    assert seen_by_millions.severity is Severity.CRITICAL
    assert seen_by_millions.reach >= CONFIG.critical_reach


def test_one_surprising_bucket_alone_is_not_an_incident() -> None:
    _, events = _run(_buckets([1, 0, 2, 1] * 12 + [14] + [1, 0, 1, 1] * 3))
    assert events == []


def test_the_baseline_is_barely_moved_by_the_spike() -> None:
    calm = [1, 1, 2, 0] * 12
    before, _ = _run(_buckets(calm))
    during, events = _run(_buckets([30] * 12), state=before)
    assert events and during.incident is not None
    assert before.baseline.negative < during.baseline.negative < 1.2 * before.baseline.negative
    assert during.baseline.daily == before.baseline.daily
    assert during.baseline.dispersion == before.baseline.dispersion


def test_a_lasting_rise_in_volume_becomes_normal_and_ends_its_incident_within_two_days() -> None:
    rng = np.random.default_rng(11)
    day = 288
    negatives = [*rng.poisson(10, 3 * day), *rng.poisson(40, 4 * day)]
    state, events = _run(_buckets(negatives, [4 * n + 8 for n in negatives]))
    kinds = [e.event for e in events]
    assert kinds[0] is IncidentEventType.OPENED and IncidentEventType.RESOLVED in kinds
    resolved = events[kinds.index(IncidentEventType.RESOLVED)]
    assert resolved.window_end - events[0].opened_at < timedelta(days=2)
    assert kinds.count(IncidentEventType.OPENED) == 1, "the new level is not alerted on again"
    assert state.incident is None


def test_no_re_alert_during_cooldown_and_after_a_restart() -> None:
    calm = [1, 0, 2, 1] * 12
    mid_incident, events = _run(_buckets([*calm, 15, 20]))
    assert [e.event for e in events] == [IncidentEventType.OPENED]
    restored = DetectorState.model_validate_json(mid_incident.model_dump_json())
    _, more = _run(_buckets([22, 25]), state=restored)
    assert all(e.event is not IncidentEventType.OPENED for e in more)


def test_fewer_sensitivity_needs_stronger_evidence() -> None:
    negatives = [1, 0, 1, 1] * 72 + [10, 10]
    _, balanced = _run(_buckets(negatives))
    _, fewer = _run(_buckets(negatives), DetectorConfig(sensitivity=Sensitivity.FEWER))
    assert balanced and not fewer


def _scored(mention_id: str, minute: float, label: str = "negative") -> ScoredMention:
    scores = SentimentScores(
        negative=0.9 if label == "negative" else 0.05, neutral=0.05, positive=0.05 if label == "negative" else 0.9
    )
    return ScoredMention(
        id=mention_id,
        source="t",
        brand="acme",
        text="x",
        created_at=T0 + timedelta(minutes=minute),
        label=label,
        scores=scores,
        model="m",
    )


def test_buckets_count_once_drop_late_and_fill_quiet_gaps() -> None:
    state = BrandBuckets()
    width, lateness = timedelta(minutes=5), timedelta(minutes=2)
    assert add_mention(state, _scored("a", 1), width) is AddResult.COUNTED
    assert add_mention(state, _scored("a", 1), width) is AddResult.DUPLICATE
    assert add_mention(state, _scored("b", 3, "positive"), width) is AddResult.COUNTED
    assert close_ready(state, width, lateness) == []
    add_mention(state, _scored("c", 23), width)
    closed = close_ready(state, width, lateness)
    assert [(b.start.minute, b.negative, b.total) for b in closed] == [(0, 1, 2), (5, 0, 0), (10, 0, 0), (15, 0, 0)]
    assert add_mention(state, _scored("d", 2), width) is AddResult.LATE


def _bursty_days(days: int, seed: int = 9) -> list[int]:
    """Negative counts with a daily burst of ~10x for two buckets, as social streams have."""
    rng = np.random.default_rng(seed)
    negatives = rng.poisson(5.0, size=days * 288)
    for day in range(days):
        burst = day * 288 + int(rng.integers(24, 264))
        negatives[burst : burst + 2] += rng.poisson(45, size=2)
    return negatives.tolist()


def test_a_brand_that_bursts_every_day_needs_a_larger_short_surge_but_not_a_larger_long_one() -> None:
    negatives = _bursty_days(10)
    state, _ = _run(_buckets(negatives, [n + 20 for n in negatives]))
    lengths = CONFIG.window_lengths()
    assert all(len(state.calibration.daily_maxima[n]) == 9 for n in lengths)
    bursty = open_thresholds(state, CONFIG)
    assert bursty[lengths[0]] > 3 * CONFIG.open_surprise
    assert bursty[lengths[-1]] < bursty[lengths[0]] / 3
    rng = np.random.default_rng(4)
    calm = rng.poisson(5.0, size=10 * 288).tolist()
    quiet, _ = _run(_buckets(calm, [n + 20 for n in calm]))
    steady = open_thresholds(quiet, CONFIG)
    for n in lengths:
        assert steady[n] == calibrated_threshold(quiet.calibration.daily_maxima[n], CONFIG)
    assert steady[lengths[0]] < bursty[lengths[0]]


def test_the_calibrated_threshold_is_the_gumbel_return_level_of_daily_maxima() -> None:
    location, scale = 2.0, 0.4
    maxima = np.expm1(gumbel_r.rvs(location, scale, size=4000, random_state=np.random.default_rng(5)))
    config = DetectorConfig(calibration_return_days=14.0, calibration_min_days=3)
    expected = np.expm1(gumbel_r.ppf(1 - 1 / 14, location, scale))
    assert calibrated_threshold(maxima.tolist(), config) == pytest.approx(expected, rel=0.05)
    assert calibrated_threshold([0.0] * 14, config) == config.open_surprise_floor
    assert calibrated_threshold([50.0, 60.0], config) == config.open_surprise
    one_storm = [8.0, 9.0, 7.5, 8.5, 9.5, 8.0, 300.0]
    assert calibrated_threshold(one_storm, config) < 30


def test_calibration_survives_a_restart_and_a_new_brand_uses_the_cold_start_threshold() -> None:
    negatives = _bursty_days(5)
    state, _ = _run(_buckets(negatives, [n + 20 for n in negatives]))
    restored = DetectorState.model_validate_json(state.model_dump_json())
    assert restored.calibration == state.calibration
    assert open_thresholds(restored, CONFIG) == open_thresholds(state, CONFIG)
    fresh = open_thresholds(DetectorState.fresh("new", CONFIG), CONFIG)
    assert {fresh[n] for n in CONFIG.window_lengths()} == {CONFIG.open_surprise}
    assert {fresh[-h] for h in CONFIG.memory.horizons} == {CONFIG.horizon_floor(h) for h in CONFIG.memory.horizons}


def test_a_slow_rise_in_a_quiet_brand_is_not_learned_as_its_daily_rhythm() -> None:
    rng = np.random.default_rng(12)
    calm = rng.poisson(0.2, size=4 * 288).tolist()
    ramp = [int(rng.poisson(0.2 + 1.2 * min(1.0, i / 27))) for i in range(36)]
    negatives = [*calm, *ramp]
    state, events = _run(_buckets(negatives, [n + 5 for n in negatives]))
    assert [e.event for e in events][:1] == [IncidentEventType.OPENED]
    assert state.baseline.daily[_buckets(negatives)[-1].start.hour] < 1.2


def test_windows_longer_than_the_resolve_window_still_resolve() -> None:
    config = DetectorConfig(bucket=timedelta(minutes=5), confirm_buckets=4)
    calm = [1, 0, 2, 1, 1, 0, 1, 2] * 6
    _, events = _run(_buckets([*calm, 12, 15, 20, 18, 16, *[1, 0, 1, 1, 0, 2] * 3]), config)
    assert [e.event for e in events] == [IncidentEventType.OPENED, IncidentEventType.RESOLVED]


def test_a_step_leaves_the_state_it_was_given_as_it_was() -> None:
    state, _ = _run(_buckets(_bursty_days(4)))
    before = state.model_dump_json()
    surge = Bucket(start=state.recent[-1].start + CONFIG.bucket, negative=90, total=100)
    after, _ = step(state, surge, CONFIG)
    assert state.model_dump_json() == before
    assert after.calibration.day_maxima != state.calibration.day_maxima


def test_each_window_learns_its_own_spread_so_a_rise_that_holds_stands_out_of_bursty_buckets() -> None:
    rng = np.random.default_rng(8)
    dispersion, level = 0.3, 10.0
    negatives = rng.poisson(rng.gamma(1 / dispersion, level * dispersion, 6 * 288)).tolist()
    state, _ = _run(_buckets(negatives, [n + 20 for n in negatives]))
    learnt = state.baseline.window_dispersion
    assert learnt[48] < state.baseline.dispersion / 5, "independent bursts average out over four hours"
    assert learnt[2] > learnt[12] > learnt[48]
    rise = np.random.default_rng(2)
    doubled = rise.poisson(rise.gamma(1 / dispersion, 2 * level * dispersion, 48)).tolist()
    start = state.recent[-1].start + CONFIG.bucket
    hump = [Bucket(start=start + i * CONFIG.bucket, negative=n, total=n + 20) for i, n in enumerate(doubled)]
    _, events = _run(hump, state=state)
    assert [e.event for e in events][:1] == [IncidentEventType.OPENED]
    per_bucket_only = state.model_copy(update={"baseline": dataclasses.replace(state.baseline, window_dispersion={})})
    fast_only = dataclasses.replace(CONFIG, memory=MemorySettings(horizons=()))
    _, unseen = _run(hump, config=fast_only, state=per_bucket_only)
    assert unseen == [], "judged with the per-bucket spread, the same rise hides in the noise"
