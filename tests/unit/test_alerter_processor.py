"""The alerter's stream logic in-process: counts, restarts mid-bucket, dedup, migration, write volume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crisiswatch.alerter.delivery_policy import expired_deliveries
from crisiswatch.alerter.processor import (
    SNAPSHOT_BUCKETS,
    BrandProcessor,
    StateTables,
    decode_digests,
    encode_digests,
    seen_key,
)
from crisiswatch.contracts.schemas import ActionKind, IncidentAction, IncidentEventType
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.windows import AddResult, id_digest
from tests.factories import scored_mention, scored_traffic

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = DetectorConfig(bucket=timedelta(minutes=1))
LATENESS = timedelta(minutes=2)


class RecordingTable(dict[str, Any]):
    """A dict that counts what a changelog would carry: one record per write or delete, and its bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.bytes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.records += 1
        self.bytes += len(key) + len(json.dumps(value, separators=(",", ":")))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.records += 1
        self.bytes += len(key)
        super().__delitem__(key)


def tables() -> StateTables:
    return StateTables(buckets=RecordingTable(), seen=RecordingTable(), detector=RecordingTable())


def written(state: StateTables) -> tuple[int, int]:
    parts = (state.buckets, state.seen, state.detector)
    return sum(t.records for t in parts), sum(t.bytes for t in parts)  # type: ignore[attr-defined]


def feed(processor: BrandProcessor, mentions: list, first_offset: int = 0, batch: int = 50) -> Iterator[Any]:
    """Mentions in source order with offsets, flushed every ``batch``; yields each add's outcome."""
    for offset, mention in enumerate(mentions, start=first_offset):
        yield processor.add(mention, "scored", offset)[0]
        if (offset + 1) % batch == 0:
            processor.flush()
    processor.flush()


def closed_totals(processor: BrandProcessor, brand: str) -> int:
    """Mentions in the brand's closed buckets (the detector's memory) plus its open ones."""
    state = processor._detector(brand, processor._brand(brand))
    memory_total = sum(state.memory.total) + state.memory.total_now
    return memory_total + sum(b.total for b in processor._brand(brand).buckets.open)


def test_a_restart_mid_bucket_neither_loses_nor_double_counts() -> None:
    traffic = scored_traffic("acme", START, minutes=6, per_minute=40, negative_every=5, tag="t")
    uninterrupted = BrandProcessor(tables(), CONFIG, LATENESS)
    list(feed(uninterrupted, traffic))

    state = tables()
    before = BrandProcessor(state, CONFIG, LATENESS)
    crash_at = 130
    list(feed(before, traffic[:crash_at]))
    # the last flushed batch ended at offset 149 in a live run; here the consumer's committed
    # offset is older than the state, so the restarted worker sees 30 records again
    after = BrandProcessor(state, CONFIG, LATENESS)
    outcomes = list(feed(after, traffic[100:], first_offset=100))
    assert outcomes[:30] == [AddResult.DUPLICATE] * 30
    assert closed_totals(after, "acme") == closed_totals(uninterrupted, "acme") == len(traffic)


def test_an_upstream_resend_after_a_restart_is_caught_by_the_stored_digests() -> None:
    state = tables()
    first = BrandProcessor(state, CONFIG, LATENESS)
    traffic = scored_traffic("acme", START, minutes=1, per_minute=10, negative_every=3, tag="r")
    list(feed(first, traffic))
    restarted = BrandProcessor(state, CONFIG, LATENESS)
    resent, _ = restarted.add(traffic[4], "scored", offset=500)
    fresh, _ = restarted.add(scored_mention("new", "acme", START + timedelta(seconds=30)), "scored", offset=501)
    assert (resent, fresh) == (AddResult.DUPLICATE, AddResult.COUNTED)


def test_a_bucket_forgets_its_digests_once_it_closes() -> None:
    state = tables()
    processor = BrandProcessor(state, CONFIG, LATENESS)
    list(feed(processor, scored_traffic("acme", START, minutes=1, per_minute=100, negative_every=3, tag="a")))
    assert seen_key("acme", START, 0) in state.seen
    list(feed(processor, [scored_mention("later", "acme", START + timedelta(minutes=4))], first_offset=100))
    assert not state.seen, "the closed bucket's chunks are deleted; the new bucket's one digest is inline"
    assert json.loads(json.dumps(state.buckets["acme"]))["v"] == 2


def test_the_state_written_per_mention_is_flat_in_the_brands_volume() -> None:
    """Per batch a busy brand writes as many records as a quieter one; bytes grow by the digests only."""
    costs = {}
    for per_minute in (200, 2_000):
        state = tables()
        processor = BrandProcessor(state, CONFIG, LATENESS)
        traffic = scored_traffic("acme", START, minutes=4, per_minute=per_minute, negative_every=4, tag="v")
        list(feed(processor, traffic, batch=per_minute // 4))
        records, size = written(state)
        costs[per_minute] = (records, size / len(traffic))
    assert costs[200][0] == costs[2_000][0]
    assert costs[2_000][1] <= 50
    assert costs[2_000][1] <= costs[200][1]


def test_state_of_the_earlier_form_is_read_and_rewritten_per_bucket() -> None:
    state = tables()
    ids = [f"old-{i}" for i in range(5)]
    state.buckets["acme"] = {
        "open": [
            {"start": START.isoformat(), "total": 5, "negative": 1, "reach_negative": 10, "ids": ids, "samples": []}
        ],
        "watermark": (START + timedelta(seconds=50)).isoformat(),
        "next_to_close": START.isoformat(),
    }
    processor = BrandProcessor(state, CONFIG, LATENESS)
    again, _ = processor.add(scored_mention("old-3", "acme", START + timedelta(seconds=55)), "scored", 7)
    assert again is AddResult.DUPLICATE
    processor.flush()
    assert state.buckets["acme"]["v"] == 2
    assert decode_digests(state.seen[seen_key("acme", START, 0)]) == {id_digest(i) for i in ids}


def test_digests_round_trip_through_their_text_form() -> None:
    digests = [id_digest(f"m{i}") for i in range(100)] + [0, 2**64 - 1]
    text = encode_digests(digests)
    assert len(text) == 11 * len(digests)
    assert decode_digests(text) == set(digests)


def test_a_storm_opens_an_incident_and_a_replayed_action_changes_nothing() -> None:
    processor = BrandProcessor(tables(), CONFIG, LATENESS)
    calm = scored_traffic("acme", START, minutes=150, per_minute=4, negative_every=8, tag="c")
    storm = scored_traffic("acme", START + timedelta(minutes=150), minutes=8, per_minute=60, negative_every=1, tag="s")
    tail = [scored_mention("tail", "acme", START + timedelta(minutes=162))]
    opened = []
    for offset, mention in enumerate(calm + storm + tail):
        opened += processor.add(mention, "scored", offset)[1]
    processor.flush()
    assert [i.event for i in opened][:1] == [IncidentEventType.OPENED]
    action = IncidentAction(
        incident_id=opened[0].incident_id,
        brand="acme",
        kind=ActionKind.ACKNOWLEDGE,
        user_id="U0123ABCD",
        acted_at=START + timedelta(minutes=163),
    )
    first = processor.act(action, "actions", 0)
    replayed = processor.act(action, "actions", 0)
    assert first[1] and not replayed[1]


def test_the_detector_state_is_written_every_few_buckets_and_a_restart_rebuilds_it_exactly() -> None:
    traffic = scored_traffic("acme", START, minutes=75, per_minute=3, negative_every=4, tag="d")
    uninterrupted = BrandProcessor(tables(), CONFIG, LATENESS)
    list(feed(uninterrupted, traffic, batch=3))

    state = tables()
    before = BrandProcessor(state, CONFIG, LATENESS)
    list(feed(before, traffic[:150], batch=3))
    assert state.detector.records < 150 // 3 // SNAPSHOT_BUCKETS + 2  # type: ignore[attr-defined]
    assert state.buckets["acme"]["c"], "buckets closed since the last snapshot wait in the brand's record"
    after = BrandProcessor(state, CONFIG, LATENESS)
    list(feed(after, traffic[140:], first_offset=140, batch=3))

    def essentials(processor: BrandProcessor) -> tuple:
        detector = processor._detector("acme", processor._brand("acme"))
        recent = [(r.start, r.negative, r.total, r.expected_negative, r.running_expected) for r in detector.recent]
        return detector.model_dump(exclude={"recent"}), recent

    assert essentials(after) == essentials(uninterrupted)


def test_only_long_resolved_incidents_lose_their_delivery_record() -> None:
    now = START + timedelta(days=30)
    deliveries = {
        "acme-20260302T0900": {"revision": 3, "thread": "1.2", "resolved_at": (now - timedelta(days=8)).isoformat()},
        "acme-20260320T0900": {"revision": 2, "thread": "1.3", "resolved_at": (now - timedelta(days=1)).isoformat()},
        "acme-20260301T0900": {"revision": 1, "thread": "1.1"},
    }
    assert expired_deliveries(deliveries, now - timedelta(days=7)) == ["acme-20260302T0900"]
