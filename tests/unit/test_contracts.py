from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from crisiswatch.contracts.schemas import SCHEMA_VERSION, DeadLetter, Mention
from crisiswatch.contracts.topics import Topics


def _mention(**overrides: object) -> Mention:
    fields = {"id": "1", "source": "test", "brand": "acme-air", "text": "hello", "created_at": "2026-03-02T10:00:00"}
    return Mention.model_validate({**fields, **overrides})


def test_naive_and_offset_timestamps_become_utc() -> None:
    assert _mention().created_at == datetime(2026, 3, 2, 10, tzinfo=UTC)
    local = datetime(2026, 3, 2, 12, tzinfo=timezone(timedelta(hours=2)))
    assert _mention(created_at=local).created_at == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_a_record_from_a_newer_schema_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="newer than this service understands"):
        _mention(schema_version=SCHEMA_VERSION + 1)


def test_blank_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="text is blank"):
        _mention(text="   ")


def test_wire_round_trip_keeps_every_field() -> None:
    mention = _mention(author_followers=5, url="https://x.example/1")
    assert Mention.model_validate_json(mention.to_bytes()) == mention


def test_dead_letters_keep_undecodable_bytes_readably_and_truncate() -> None:
    letter = DeadLetter.for_payload("listener", "file", "bad", b"ok \xff" + b"x" * 10_000, limit=100)
    assert letter.payload.startswith("ok \\xff")
    assert len(letter.payload) == 100
    assert letter.payload_bytes == 10_004


def test_topic_prefix_namespaces_every_topic() -> None:
    assert Topics("replay.").all() == (
        "replay.mentions.raw",
        "replay.mentions.scored",
        "replay.crisis.alerts",
        "replay.crisis.actions",
        "replay.mentions.dlq",
    )
    assert Topics().scored == "mentions.scored"
