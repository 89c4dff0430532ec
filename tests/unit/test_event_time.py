"""Event time from outside: one mis-dated mention must not make a brand's real mentions late or stall a replay.

Each test is one attack from the hardening review: a post dated 9999-12-31,
a source clock ten minutes fast, a first mention dated year 1, and the same
lines in a replayed or backtested file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from crisiswatch.alerter.processor import BrandProcessor, StateTables
from crisiswatch.analysis.backtest import load_mentions, replay
from crisiswatch.contracts.schemas import Mention, RejectionCode, ScoredMention
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.windows import MAX_GAP_BUCKETS, AddResult, BrandBuckets, add_mention, close_ready
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from crisiswatch.ingest.records import EventTimeBounds, RejectedInput, recording_span, to_mentions
from crisiswatch.ingest.sources import paced
from crisiswatch.listener.settings import ListenerSettings
from tests.factories import scored_mention

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CATALOG = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)
CONFIG = DetectorConfig(bucket=timedelta(minutes=1))
LATENESS = timedelta(minutes=2)
FAR_FUTURE = "9999-12-31T23:59:59Z"
YEAR_ONE = "0001-01-01T00:00:00Z"


def _record(created_at: str, mention_id: str = "1") -> dict[str, str]:
    return {"id": mention_id, "text": "Acme Air lost my bag", "created_at": created_at}


@pytest.mark.parametrize(
    ("created_at", "words"),
    [
        (FAR_FUTURE, "ahead of the listener's clock"),
        ((NOW + timedelta(minutes=10)).isoformat(), "ahead of the listener's clock"),
        ((NOW - timedelta(days=3)).isoformat(), "--history"),
        ("2016-01-01T00:00:00Z", "--history"),
    ],
)
def test_live_ingest_refuses_times_from_the_future_or_older_than_a_day(created_at: str, words: str) -> None:
    bounds = ListenerSettings().event_time_bounds()
    with pytest.raises(RejectedInput) as refused:
        to_mentions(_record(created_at), CATALOG, bounds=bounds, now=NOW)
    assert refused.value.code is RejectionCode.TIME_OUT_OF_RANGE
    assert words in refused.value.reason


@pytest.mark.parametrize("created_at", [YEAR_ONE, "9999-12-31T23:59:59-05:00", 1e18])
def test_times_off_the_calendar_are_refused_as_out_of_range_even_in_a_replay_of_history(
    created_at: str | float,
) -> None:
    bounds = ListenerSettings().event_time_bounds(history=True)
    with pytest.raises(RejectedInput) as refused:
        to_mentions({**_record(""), "created_at": created_at}, CATALOG, bounds=bounds, now=NOW)
    assert refused.value.code is RejectionCode.TIME_OUT_OF_RANGE


def test_skew_within_minutes_and_history_with_the_flag_are_accepted() -> None:
    live = ListenerSettings().event_time_bounds()
    history = ListenerSettings().event_time_bounds(history=True)
    assert to_mentions(_record((NOW + timedelta(minutes=4)).isoformat()), CATALOG, bounds=live, now=NOW)
    assert to_mentions(_record((NOW - timedelta(hours=23)).isoformat()), CATALOG, bounds=live, now=NOW)
    assert to_mentions(_record("2025-06-01T08:00:00Z"), CATALOG, bounds=history, now=NOW)


def test_the_wire_contract_keeps_event_times_between_the_epoch_and_2200() -> None:
    for created_at in (YEAR_ONE, FAR_FUTURE):
        with pytest.raises(ValidationError):
            Mention(id="1", source="t", brand="acme-air", text="hi", created_at=created_at)


def test_a_mis_dated_line_neither_paces_a_replay_nor_anchors_its_clock() -> None:
    now = [0.0]
    start = NOW - timedelta(hours=1)
    times = [FAR_FUTURE, YEAR_ONE, start.isoformat(), (start + timedelta(minutes=10)).isoformat(), FAR_FUTURE]
    records = [json.dumps({"created_at": moment}).encode() for moment in times]
    bounds = EventTimeBounds.history()
    released = [
        now[0]
        for _ in paced(
            records,
            speed=60,
            sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
            clock=lambda: now[0],
            accept=lambda moment: bounds.contains(moment, NOW),
        )
    ]
    assert released == pytest.approx([0.0, 0.0, 0.0, 10.0, 10.0])


def _on_time(count: int, first: datetime, source: str = "on-time") -> list:
    return [scored_mention(f"{source}-{i}", "acme-air", first + timedelta(seconds=20 * i)) for i in range(count)]


def test_a_mention_dated_9999_is_refused_and_the_brand_keeps_counting() -> None:
    processor = BrandProcessor(StateTables({}, {}, {}), CONFIG, LATENESS, clock=lambda: NOW + timedelta(minutes=10))
    rogue = scored_mention("rogue", "acme-air", datetime(2199, 12, 31, tzinfo=UTC))
    assert processor.add(rogue)[0] is AddResult.FUTURE
    outcomes = [processor.add(mention)[0] for mention in _on_time(20, NOW)]
    assert outcomes == [AddResult.COUNTED] * 20


def test_a_source_clock_minutes_fast_does_not_make_on_time_mentions_late() -> None:
    clock = [NOW]
    processor = BrandProcessor(StateTables({}, {}, {}), CONFIG, LATENESS, clock=lambda: clock[0])

    def arrive(mention: ScoredMention) -> AddResult:
        clock[0] = max(clock[0], mention.created_at + timedelta(seconds=1))
        return processor.add(mention)[0]

    assert [arrive(m) for m in _on_time(10, NOW - timedelta(minutes=5), "earlier")] == [AddResult.COUNTED] * 10
    fast = scored_mention("fast", "acme-air", clock[0] + timedelta(minutes=4))
    assert processor.add(fast)[0] is AddResult.COUNTED
    assert [arrive(m) for m in _on_time(20, clock[0] - timedelta(seconds=5))] == [AddResult.COUNTED] * 20


def test_without_a_clock_the_newest_time_is_the_watermark_as_a_replay_needs() -> None:
    state = BrandBuckets()
    add_mention(state, scored_mention("a", "acme-air", NOW + timedelta(days=1)), CONFIG.bucket)
    assert state.watermark == NOW + timedelta(days=1)


def test_a_first_mention_dated_long_ago_costs_one_bounded_walk_not_one_per_mention() -> None:
    state = BrandBuckets()
    add_mention(state, scored_mention("old", "acme-air", datetime(1971, 1, 1, tzinfo=UTC)), CONFIG.bucket)
    walked = []
    for mention in _on_time(30, NOW):
        add_mention(state, mention, CONFIG.bucket)
        walked.append(len(close_ready(state, CONFIG.bucket, LATENESS)))
    assert sum(walked) <= MAX_GAP_BUCKETS + 1 + 30
    assert walked[-1] <= 1, "once past the old mention, a bucket closes per minute of stream"
    assert state.next_to_close is not None and state.next_to_close > NOW - timedelta(minutes=10)


def test_a_backtest_skips_mis_dated_rows_says_how_many_and_still_finds_the_rest(tmp_path: Path) -> None:
    rows = [_record(FAR_FUTURE, "future"), _record(YEAR_ONE, "ancient")]
    rows += [
        {**_record((NOW - timedelta(hours=2, minutes=-i)).isoformat(), f"r{i}"), "sentiment": "neg"} for i in range(30)
    ]
    path = tmp_path / "mentions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_mentions(path, CATALOG, None, now=NOW)
    assert loaded.out_of_range == 2 and len(loaded.rejected) == 2
    assert len(loaded.mentions) == 30
    buckets = len(replay(loaded.mentions, CONFIG, LATENESS)["acme-air"].verdicts)
    assert 30 <= buckets <= 40


def test_a_2015_recording_backtests_whole_whatever_the_clock_says(tmp_path: Path) -> None:
    first = datetime(2015, 6, 22, 8, 0, tzinfo=UTC)
    rows = [{**_record((first + timedelta(minutes=3 * i)).isoformat(), f"r{i}"), "sentiment": "neg"} for i in range(40)]
    path = tmp_path / "history-2015.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_mentions(path, CATALOG, None, now=datetime(2199, 1, 1, tzinfo=UTC))
    assert loaded.rejected == [] and len(loaded.mentions) == 40
    assert sum(len(r.verdicts) for r in replay(loaded.mentions, CONFIG, LATENESS).values()) >= 100


def test_history_is_judged_against_its_own_span_not_the_clock() -> None:
    times = [datetime(2015, 4, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(24 * 60)]
    span = recording_span([*times, datetime(1970, 1, 1, tzinfo=UTC), datetime(2199, 1, 1, tzinfo=UTC)])
    assert span[0] < times[0] and span[1] > times[-1]
    assert span[0] > datetime(2014, 1, 1, tzinfo=UTC) and span[1] < datetime(2016, 1, 1, tzinfo=UTC)
    history = ListenerSettings().event_time_bounds(history=True, span=span)
    assert to_mentions(_record("2015-05-01T08:00:00Z"), CATALOG, bounds=history, now=NOW)
    with pytest.raises(RejectedInput) as refused:
        to_mentions(_record("1970-01-01T00:00:00Z"), CATALOG, bounds=history, now=NOW)
    assert refused.value.code is RejectionCode.TIME_OUT_OF_RANGE
    assert "outside the recording's span" in refused.value.reason
    assert recording_span([]) == (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
