from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from crisiswatch.contracts.schemas import DeadLetter, RejectionCode
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, Brand, BrandCatalog
from crisiswatch.ingest.records import FieldMapping, RejectedInput, decode_json_object, to_mentions
from crisiswatch.ingest.scenario import demo_scenario, generate
from crisiswatch.ingest.sources import paced
from crisiswatch.listener.dedup import RecentIds
from crisiswatch.listener.ratelimit import TokenBuckets
from crisiswatch.listener.settings import ListenerSettings

CATALOG = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)


@pytest.mark.parametrize(
    ("text", "brands"),
    [
        ("Flying Acme Air today", ["acme-air"]),
        ("@AcmeAirHelp where is my bag", ["acme-air"]),
        ("#acmeair delays again", ["acme-air"]),
        ("My acme air purifier is great", []),
        ("AcmeAirlines is not us", []),
        ("Nimbus Bank and Voltcell both down", ["nimbus-bank", "voltcell"]),
        ("email me at x@Voltcell.com", []),
    ],
)
def test_brand_matching_uses_names_handles_hashtags_and_exclusions(text: str, brands: list[str]) -> None:
    assert CATALOG.match(text) == brands


def test_a_brand_without_terms_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no names"):
        Brand(id="empty", names=())


def test_field_mapping_reads_nested_exports() -> None:
    record = {
        "tweet_id": 42,
        "full_text": "Acme Air lost my bag",
        "ts": 1772445600,
        "user": {"screen_name": "ana", "followers_count": "1200"},
    }
    mapping = FieldMapping.parse(
        "id=tweet_id,text=full_text,created_at=ts,author_handle=user.screen_name,author_followers=user.followers_count"
    )
    [mention] = to_mentions(record, CATALOG, mapping, source="x")
    assert (mention.id, mention.brand, mention.author_handle, mention.author_followers) == (
        "42",
        "acme-air",
        "ana",
        1200,
    )
    assert mention.created_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert mention.brand_name == "Acme Air", "the display name travels with the mention, for public replies"


def test_bad_field_mapping_names_the_known_fields() -> None:
    with pytest.raises(ValueError, match="FIELD one of id, text"):
        FieldMapping.parse("body=text")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "invalid UTF-8"),
        (b"{nope", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"[" * 100_000, "malformed JSON"),
    ],
)
def test_undecodable_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(RejectedInput, match=reason.replace("[", r"\[")):
        decode_json_object(payload)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": "1", "created_at": "2026-03-02T10:00:00Z"}, "text is missing"),
        ({"id": "1", "text": 5, "created_at": "2026-03-02T10:00:00Z"}, "text must be a string"),
        ({"text": "Acme Air", "created_at": "2026-03-02T10:00:00Z"}, "id is missing"),
        ({"id": "1", "text": "Acme Air"}, "created_at is missing"),
        ({"id": "1", "text": "Acme Air", "created_at": "yesterday"}, "is not an ISO-8601 time"),
        (
            {"id": "1", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z", "likes": "many"},
            "likes must be a whole number",
        ),
        (
            {"id": "1", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z", "brand": "globex"},
            "unknown brand 'globex'",
        ),
    ],
)
def test_invalid_records_are_rejected_with_a_reason(record: dict, reason: str) -> None:
    with pytest.raises(RejectedInput, match=reason):
        to_mentions(record, CATALOG)


def test_an_unknown_brand_is_refused_without_showing_the_client_the_brand_catalogue() -> None:
    with pytest.raises(RejectedInput) as refused:
        to_mentions({"id": "1", "text": "hi", "created_at": "2026-03-02T10:00:00Z", "brand": "globex"}, CATALOG)
    assert refused.value.code is RejectionCode.UNKNOWN_BRAND
    assert not any(brand in refused.value.reason for brand in CATALOG.ids())


def test_rejections_carry_a_bounded_code_from_where_they_are_raised() -> None:
    with pytest.raises(RejectedInput) as undecodable:
        decode_json_object(b"\xff")
    assert undecodable.value.code == RejectionCode.INVALID_UTF8 == "invalid_utf8"
    base = {"id": "1", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z"}
    for change, code in [
        ({"text": None}, "missing_field"),
        ({"text": "Acme Air " + "x" * 10_000}, "too_large"),
        ({"id": "x" * 129}, "too_large"),
        ({"likes": "missing"}, "invalid_field"),
    ]:
        with pytest.raises(RejectedInput) as rejected:
            to_mentions({**base, **change}, CATALOG)
        assert rejected.value.code == code


def test_a_refund_gives_back_what_a_refused_batch_was_charged_never_beyond_the_burst() -> None:
    buckets = TokenBuckets(rate=1, burst=10, clock=lambda: 0.0)
    assert buckets.take("a", 1) == 0.0
    buckets.charge("a", 29)
    assert buckets.take("a", 1) > 0, "in debt"
    buckets.charge("a", -30)
    assert buckets.take("a", 10) == 0.0
    buckets.charge("a", -100)
    assert buckets.take("a", 10) == 0.0 and buckets.take("a", 1) > 0, "a refund never lifts the bucket past its burst"


def test_recent_ids_forget_the_oldest_beyond_capacity() -> None:
    recent = RecentIds(capacity=2)
    assert recent.first_time("a") and recent.first_time("b")
    assert not recent.first_time("a")
    assert recent.first_time("c")
    assert recent.first_time("b"), "b was the oldest and should have been forgotten"


def test_replay_pacing_follows_recorded_time_divided_by_speed() -> None:
    now = [0.0]
    released: list[float] = []
    start = datetime(2026, 3, 2, tzinfo=UTC)
    records = [json.dumps({"created_at": (start + timedelta(minutes=m)).isoformat()}).encode() for m in (0, 10, 20)]
    for _ in paced(records, speed=60, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]):
        released.append(now[0])
    assert released == pytest.approx([0.0, 10.0, 20.0])


def test_the_scenario_is_deterministic_and_its_crisis_is_negative() -> None:
    first = list(generate(demo_scenario()))
    assert first == list(generate(demo_scenario()))
    crisis = demo_scenario().crises[0]
    during = [r for r in first if r["brand"] == crisis.brand and r["truth"].get("crisis")]
    assert len(during) > 200
    assert min(datetime.fromisoformat(r["created_at"]) for r in during) >= crisis.onset


def test_the_demo_hebrew_brand_is_found_by_its_hebrew_name_and_its_posts_read_as_hebrew() -> None:
    records = [r for r in generate(demo_scenario()) if r["brand"] == "galil-mobile"]
    storm = [r for r in records if r["truth"].get("crisis")]
    assert len(storm) > 100
    for record in records[:200]:
        unnamed = {k: v for k, v in record.items() if k not in ("brand", "lang")}
        [mention] = to_mentions(unnamed, CATALOG, source="scenario")
        assert (mention.brand, mention.lang) == ("galil-mobile", "he"), record["text"]
    assert CATALOG.display_name("galil-mobile") == "גליל מובייל", "public replies name the brand as customers do"


def test_token_buckets_grant_bursts_refuse_whole_batches_and_forget_old_clients() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=10, burst=20, clock=lambda: now[0], max_clients=2)
    assert buckets.take("a", 20) == 0.0
    assert buckets.take("a", 5) == 0.5, "5 records at 10/s after an empty bucket: half a second"
    now[0] = 0.5
    assert buckets.take("a", 5) == 0.0
    assert buckets.take("b", 50) == 0.0, "a batch larger than the burst passes on a full bucket"
    assert buckets.take("b", 1) == 0.1
    buckets.take("c", 1)
    assert list(buckets.levels) == ["b", "c"], "the least recently seen client is forgotten"


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        ({}, False),
        ({"LISTENER_INGEST_TOKEN": "short"}, False),
        ({"LISTENER_INGEST_TOKEN": "x" * 32}, True),
        ({"LISTENER_INGEST_ALLOW_ANONYMOUS": "true"}, True),
        ({"LISTENER_INGEST_ALLOW_ANONYMOUS": "true", "LISTENER_INGEST_TOKEN": "short"}, False),
    ],
)
def test_ingest_needs_a_long_token_unless_anonymous_is_asked_for(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], allowed: bool
) -> None:
    for name in ("LISTENER_INGEST_TOKEN", "LISTENER_INGEST_ALLOW_ANONYMOUS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ListenerSettings()
    if allowed:
        settings.checked_ingest_token()
    else:
        with pytest.raises(ValueError, match="LISTENER_INGEST_TOKEN"):
            settings.checked_ingest_token()


def test_serve_refuses_to_start_an_open_endpoint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_INGEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "crisiswatch.listener", "serve"],
        env={**env, "LISTENER_INGEST_PORT": "0", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "LISTENER_INGEST_TOKEN must be set" in done.stderr


HOSTILE_LINES = [
    '{"id": "inf", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z", "likes": Infinity}',
    '{"id": "nan", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z", "likes": -Infinity}',
    '{"id": "big", "text": "Acme Air", "created_at": "2026-03-02T10:00:00Z", "likes": %s}' % ("9" * 5000),
    '{"id": "sur", "text": "Acme Air \\ud800 lost my bag", "created_at": "2026-03-02T10:00:00Z"}',
]


@pytest.mark.parametrize("line", HOSTILE_LINES)
def test_a_replayed_line_that_breaks_a_json_or_unicode_reader_is_rejected_and_dead_letterable(line: str) -> None:
    catalog = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)
    with pytest.raises(RejectedInput) as rejected:
        to_mentions(decode_json_object(line.encode()), catalog, FieldMapping(), "file")
    letter = DeadLetter.for_payload("listener", "file", rejected.value.reason, line, code=rejected.value.code)
    assert json.loads(letter.to_bytes())["reason"]


def test_a_dead_letter_keeps_a_lone_surrogate_as_an_escape() -> None:
    letter = DeadLetter.for_payload("listener", "http", "bad \ud800 reason", '{"text": "a \ud800 b"}')
    assert "\\xed\\xa0\\x80" in json.loads(letter.to_bytes())["payload"]
