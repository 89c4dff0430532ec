"""What must hold where nobody tuned: a 10x hour after a bursty past, a young brand's rise, one voice retweeted."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from crisiswatch.analysis.backtest import replay
from crisiswatch.contracts.schemas import IncidentEventType, Severity
from crisiswatch.detection.calibration import open_thresholds
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.count_laws import rise_evidence
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket
from tests.factories import scored_mention

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)


def _run(negatives: list[int], config: DetectorConfig, state: DetectorState | None = None, start: datetime = MONDAY):
    state = state or DetectorState.fresh("acme", config)
    opened = []
    for index, negative in enumerate(negatives):
        bucket = Bucket(start=start + index * config.bucket, negative=negative, total=2 * negative + 10)
        state, incidents = step(state, bucket, config)
        opened += [i for i in incidents if i.event is IncidentEventType.OPENED]
    return state, opened


def test_an_hour_at_ten_times_normal_opens_whatever_the_brands_bursty_past() -> None:
    config = DetectorConfig(bucket=timedelta(minutes=5))
    per_hour = 12
    rng = np.random.default_rng(3)
    counts = rng.poisson(30 / per_hour, 21 * 24 * per_hour)
    for day in range(7, 21):  # a bursty fortnight: every afternoon a 10-minute flood
        at = (day * 24 + 15) * per_hour
        counts[at : at + 2] += 150
    state, _ = _run(counts.tolist(), config)
    assert max(open_thresholds(state, config).values()) <= config.calibration_ceiling * config.open_surprise_floor
    burst = rng.poisson(30 / per_hour, 24 * per_hour)
    burst[9 * per_hour : 10 * per_hour] = rng.poisson(400 / per_hour, per_hour)  # 13x its usual 09:00
    day = MONDAY + timedelta(days=21)
    _, opened = _run(burst.tolist(), config, state, day)
    assert opened, "a 13x hour went unseen"
    assert day + timedelta(hours=9) <= opened[0].opened_at <= day + timedelta(hours=10)


def test_a_young_brands_fourfold_rise_opens_a_warning_within_six_hours_and_says_its_history_is_short() -> None:
    config = DetectorConfig()
    rng = np.random.default_rng(11)
    hours = np.arange(4 * 24) % 24
    rhythm = 1 + 0.4 * np.cos(2 * np.pi * (hours - 15) / 24)
    per_minute = np.repeat(8 * rhythm / 60, 60)
    onset = 3 * 24 * 60 + 9 * 60  # three days of history, then 09:00
    per_minute[onset : onset + 8 * 60] *= 4
    _, opened = _run(rng.poisson(per_minute[: onset + 8 * 60]).tolist(), config)
    assert [i for i in opened if i.opened_at < MONDAY + timedelta(minutes=onset)] == [], "false alarm before"
    caught = [i for i in opened if i.opened_at >= MONDAY + timedelta(minutes=onset)]
    assert caught, "a fourfold rise from 8 an hour for 8 hours after 3 days went unseen"
    assert caught[0].opened_at - (MONDAY + timedelta(minutes=onset)) <= timedelta(hours=6)
    assert caught[0].severity.rank >= Severity.WARNING.rank
    assert "short history: 3 days" in caught[0].rule


def _young_rise(per_hour: float, ratio: float, seed: int, days: int = 3) -> tuple[list[int], int]:
    """``days`` of a calm brand at ``per_hour`` on a daily rhythm, then from 09:00 ``ratio`` times it for 8 hours."""
    rng = np.random.default_rng(seed)
    hours = np.arange((days + 1) * 24) % 24
    rhythm = 1 + 0.4 * np.cos(2 * np.pi * (hours - 15) / 24)
    per_bucket = np.repeat(per_hour * rhythm / 12, 12)
    onset = (days * 24 + 9) * 12
    per_bucket[onset : onset + 8 * 12] *= ratio
    return rng.poisson(per_bucket[: onset + 8 * 12]).tolist(), onset


def test_a_young_brands_doubling_opens_a_warning_within_six_hours_and_holds_while_it_lasts() -> None:
    config = DetectorConfig(bucket=timedelta(minutes=5), rise_evidence=2.0)
    counts, onset = _young_rise(per_hour=12, ratio=2.0, seed=4)
    start = MONDAY + onset * config.bucket
    state, opened = _run(counts, config)
    assert [i for i in opened if i.opened_at < start] == [], "false alarm before the rise"
    caught = [i for i in opened if i.opened_at >= start]
    assert len(caught) == 1, "a doubling from 12 an hour after 3 days went unseen, or reopened"
    assert caught[0].opened_at - start <= timedelta(hours=6)
    assert caught[0].severity.rank >= Severity.WARNING.rank
    assert "short history: 3 days" in caught[0].rule and "evidence for a rise" in caught[0].rule
    assert state.incident is not None, "the incident resolved while the rise still held"


def test_the_rise_rule_is_off_by_its_setting_and_for_brands_past_their_first_week() -> None:
    counts, _ = _young_rise(per_hour=12, ratio=2.0, seed=4)
    off = DetectorConfig(bucket=timedelta(minutes=5), rise_evidence=math.inf)
    assert not [i for i in _run(counts, off)[1] if "evidence for a rise" in i.rule]
    grown = DetectorConfig(bucket=timedelta(minutes=5), rise_evidence=2.0, young_days=3)
    assert not [i for i in _run(counts, grown)[1] if "evidence for a rise" in i.rule]


def test_rise_evidence_favours_the_rise_above_the_midpoint_and_weakens_with_the_brands_spread() -> None:
    assert rise_evidence(60, 30.0, 2.0, 0.0) > 2 > rise_evidence(45, 30.0, 2.0, 0.0)
    assert rise_evidence(30, 30.0, 2.0, 0.0) < 0
    assert 0 < rise_evidence(60, 30.0, 2.0, 0.25) < rise_evidence(60, 30.0, 2.0, 0.01) < rise_evidence(60, 30.0, 2.0, 0)


def _retweet_storm(retweets: bool) -> list:
    mentions = []
    for minute in range(3 * 24 * 60):
        if minute % 9 == 0:
            mentions.append(
                scored_mention(f"calm-{minute}", "acme-air", MONDAY + timedelta(minutes=minute), negative=True,
                               text=f"acme-air lost my bag number {minute}, what a day")
            )  # fmt: skip
    storm = MONDAY + timedelta(days=3, hours=20)
    for copy in range(40):
        text = "RT @singer: studio at 45,000 ft, one outlet, acme-air" if retweets else f"acme-air broke my {copy} bag"
        mentions.append(
            scored_mention(f"storm-{copy}", "acme-air", storm + timedelta(seconds=20 * copy), negative=True, text=text)
        )
    return mentions


def test_a_retweet_storm_is_one_voice_but_forty_people_in_their_own_words_are_forty() -> None:
    config = DetectorConfig()
    opened = {
        retweets: [
            i
            for i in replay(_retweet_storm(retweets), config)["acme-air"].incidents
            if i.event is IncidentEventType.OPENED and i.opened_at >= MONDAY + timedelta(days=3, hours=20)
        ]
        for retweets in (True, False)
    }
    assert opened[False], "forty distinct complaints in 13 minutes went unseen"
    assert opened[True] == [], "forty retweets of one post opened an incident"
