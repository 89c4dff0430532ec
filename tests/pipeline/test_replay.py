"""``crisiswatch replay``: namespaced publishing on the real broker, export presets, time zones."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crisiswatch.cli import app
from crisiswatch.contracts.schemas import DeadLetter, Mention
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from crisiswatch.ingest.records import to_mentions
from crisiswatch.replay import PRESETS, mapping_for, records_for
from crisiswatch.runtime.broker import EmbeddedBroker

from ..conftest import read_topic, topic_size

CATALOG = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)


def test_a_replay_lands_in_its_namespace_and_never_in_the_live_topics(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    source = tmp_path / "recorded.jsonl"
    rows = [
        {"id": f"{run}-{i}", "text": f"Acme Air delayed again {i}", "created_at": f"2026-03-02T07:{i:02d}:00Z"}
        for i in range(12)
    ]
    mis_dated = [
        {"id": f"{run}-{moment[:4]}", "text": "Acme Air delayed again", "created_at": moment}
        for moment in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z")
    ]
    lines = [json.dumps(row) for row in [mis_dated[0], *rows[:6], mis_dated[1], *rows[6:]]]
    source.write_text("\n".join(lines) + "\nnot json\n")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    namespace = f"replay-{run}."

    result = CliRunner().invoke(app, ["replay", str(source), "--namespace", namespace, "--speed", "600"])

    assert result.exit_code == 0, result.output
    assert "accepted 12" in result.output and "rejected 3" in result.output and "out_of_range 2" in result.output
    published = read_topic(broker.bootstrap_servers, f"{namespace}mentions.raw", 12)
    replayed = [Mention.model_validate_json(value) for value in published]
    assert sorted(m.id for m in replayed) == sorted(row["id"] for row in rows)
    letters = [
        DeadLetter.model_validate_json(v) for v in read_topic(broker.bootstrap_servers, f"{namespace}mentions.dlq", 3)
    ]
    assert sorted(letter.code for letter in letters) == ["malformed_json", "time_out_of_range", "time_out_of_range"]
    live_size = topic_size(broker.bootstrap_servers, Topics().raw)
    live = read_topic(broker.bootstrap_servers, Topics().raw, live_size, timeout=10) if live_size else []
    assert not any(run.encode() in value for value in live)
    assert Topics(namespace).group("crisiswatch-classifier") == f"{namespace}crisiswatch-classifier"


def test_an_empty_namespace_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "recorded.jsonl"
    source.write_text("{}\n")
    result = CliRunner().invoke(app, ["replay", str(source), "--namespace", ""])
    assert result.exit_code != 0
    assert "never writes to the live topics" in " ".join(result.output.replace("│", " ").split())


def test_x_api_v2_pages_are_flattened_with_their_authors(tmp_path: Path) -> None:
    page = {
        "data": [
            {
                "id": "1001",
                "text": "@AcmeAir my flight is cancelled and nobody answers",
                "created_at": "2026-03-02T07:00:00.000Z",
                "author_id": "u1",
                "lang": "en",
                "public_metrics": {"like_count": 4, "retweet_count": 2, "reply_count": 1},
            },
            {"id": "1002", "text": "Acme Air lost my bag", "created_at": "2026-03-02T07:01:00.000Z", "author_id": "u2"},
        ],
        "includes": {
            "users": [
                {"id": "u1", "username": "traveller", "public_metrics": {"followers_count": 1200}},
                {"id": "u2", "username": "backpacker", "public_metrics": {"followers_count": 15}},
            ]
        },
    }
    streamed = {
        "data": {"id": "1003", "text": "Acme Air refund?", "created_at": "2026-03-02T07:02:00Z", "author_id": "u3"},
        "includes": {"users": [{"id": "u3", "username": "asker", "public_metrics": {"followers_count": 3}}]},
    }
    source = tmp_path / "dump.jsonl"
    source.write_text(json.dumps(page) + "\n" + json.dumps(streamed) + "\n" + "{broken\n")
    mapping = mapping_for("x-api-v2")
    records = list(records_for(source, PRESETS["x-api-v2"]))
    assert records[-1] == b"{broken"
    mentions = [m for record in records[:-1] for m in to_mentions(record, CATALOG, mapping)]
    first = mentions[0]
    assert [m.id for m in mentions] == ["1001", "1002", "1003"]
    assert (first.author_handle, first.author_followers, first.lang) == ("traveller", 1200, "en")
    assert (first.engagement.likes, first.engagement.reposts, first.engagement.replies) == (4, 2, 1)
    assert first.url == "https://x.com/traveller/status/1001"
    assert mentions[2].author_handle == "asker"


def test_naive_timestamps_are_read_in_the_given_zone_and_offsets_are_kept() -> None:
    mapping = mapping_for("generic-csv", timezone="Asia/Jerusalem")
    row = {"id": "1", "text": "Acme Air", "created_at": "2026-03-02 09:00:00", "author": "dana"}
    (mention,) = to_mentions(row, CATALOG, mapping)
    assert mention.created_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert mention.author_handle == "dana"
    (explicit,) = to_mentions({**row, "created_at": "2026-03-02T09:00:00+00:00"}, CATALOG, mapping)
    assert explicit.created_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown time zone"):
        mapping_for("jsonl", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown preset"):
        mapping_for("facebook")
