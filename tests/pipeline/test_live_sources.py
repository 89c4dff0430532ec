"""Live sources end to end: recorded Jetstream and Mastodon frames, served locally, reach mentions.raw exactly once.

The frame servers replay the networks' documented formats with matching and
non-matching posts, hostile frames, deletes and edits; the listener runs as a
real process against the real broker, loses its connection mid-stream, is
restarted, and (with its broker frozen) must stop reading instead of buffering.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crisiswatch.contracts.schemas import DeadLetter, Mention
from crisiswatch.ingest.networks import BLUESKY_POST
from crisiswatch.listener.frame_server import FrameServer
from crisiswatch.listener.streams import CursorFile
from crisiswatch.runtime.broker import EmbeddedBroker, free_port

from ..conftest import metric_value, wait_until

pytestmark = pytest.mark.pipeline

BRANDS = ["Acme Air", "@NimbusBankHelp", "#Voltcell", "גליל מובייל"]
START_US = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1_000_000)


def jetstream_event(number: int, text: str, operation: str = "create", **extra: object) -> dict:
    time_us = START_US + number * 1000
    commit: dict = {"rev": f"r{number}", "operation": operation, "collection": BLUESKY_POST, "rkey": f"post{number}"}
    if operation != "delete":
        created = datetime.fromtimestamp(time_us / 1e6, UTC).isoformat().replace("+00:00", "Z")
        commit["record"] = {"$type": BLUESKY_POST, "text": text, "createdAt": created, "langs": ["en"]} | extra
        commit["cid"] = f"bafy{number}"
    return {"did": f"did:plc:author{number % 7}", "time_us": time_us, "kind": "commit", "commit": commit}


def jetstream_recording(posts: int = 60) -> tuple[list[str], set[tuple[str, str]]]:
    """Frames with every kind of trouble; and the (brand, id) of each post that must arrive once."""
    frames: list[str] = []
    expected: set[tuple[str, str]] = set()
    brand_ids = ["acme-air", "nimbus-bank", "voltcell", "galil-mobile"]
    for number in range(1, posts + 1):
        if number % 2:
            which = (number // 2) % 4
            frames.append(json.dumps(jetstream_event(number, f"{BRANDS[which]} is down again, post {number}")))
            expected.add((brand_ids[which], f"at://did:plc:author{number % 7}/{BLUESKY_POST}/post{number}"))
        else:
            frames.append(json.dumps(jetstream_event(number, f"a lovely day at the beach, post {number}")))
        if number == 10:
            frames.append('{"did": "did:plc:x", "time_us": 1, "kind": "commit", "commit": {')  # malformed
        if number == 12:
            frames.append(json.dumps(jetstream_event(12, "Acme Air " + "x" * 4000) | {"time_us": START_US + 12_500}))
        if number == 14:
            frames.append(json.dumps({"did": "did:plc:x", "time_us": START_US + 14_500, "kind": "sync"}))
        if number == 16:
            frames.append(json.dumps({"did": "did:plc:x", "time_us": START_US + 16_500, "kind": "identity"}))
        if number == 20:
            frames.append(json.dumps(jetstream_event(3, "", operation="delete") | {"time_us": START_US + 20_500}))
            edit = jetstream_event(5, "Acme Air, edited", operation="update") | {"time_us": START_US + 20_600}
            frames.append(json.dumps(edit))
    return frames, expected


def mentions_on(pipeline, topic: str) -> list[bytes]:
    return pipeline.read(topic)


def assert_exactly_once(pipeline, expected: set[tuple[str, str]]) -> None:
    mentions = [Mention.model_validate_json(value) for value in pipeline.read(pipeline.topics.raw)]
    counts = Counter((m.brand, m.id) for m in mentions)
    assert set(counts) == expected, f"missing {sorted(expected - set(counts))[:5]}, extra {set(counts) - expected}"
    assert max(counts.values()) == 1, [key for key, n in counts.items() if n > 1]


def listener_env(pipeline, tmp_path: Path, **extra: str) -> None:
    pipeline.env.update(
        {
            "LISTENER_STREAM_CURSOR_FILE": str(tmp_path / "cursor.json"),
            "LISTENER_STREAM_MAX_FRAME_BYTES": "2048",
            "LISTENER_STREAM_BATCH": "5",
            **extra,
        }
    )


def restart_midway(pipeline, name: str, args: list[str], metric_labels: str, midway: float, total: float) -> str:
    """Start the listener, stop it (SIGTERM) once ``midway`` posts matched, start it again; the metrics text."""
    first = pipeline.start(name, *args)
    pipeline.wait_for_metric("listener", "crisiswatch_listener_stream_frames_total", metric_labels, midway, 120)
    reconnects = metric_value(pipeline.metrics("listener"), "crisiswatch_listener_stream_reconnects_total")
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0
    pipeline.start(name, *args)
    return str(reconnects)


def test_every_matching_bluesky_post_reaches_mentions_raw_exactly_once_through_a_drop_and_a_restart(
    pipeline_factory, tmp_path: Path
) -> None:
    frames, expected = jetstream_recording()
    server = FrameServer("bluesky", frames, rate=15, disconnect_after=[12]).start()
    pipeline = pipeline_factory()
    listener_env(pipeline, tmp_path)
    try:
        reconnects = restart_midway(
            pipeline, "listener", ["bluesky", "--url", server.url], 'outcome="matched"', 10, len(expected)
        )
        assert float(reconnects) >= 1, "the server dropped the first connection after 12 frames"
        wait_until(lambda: len(pipeline.read(pipeline.topics.raw)) >= len(expected), "every post", 120, every=1)
        assert_exactly_once(pipeline, expected)
        letters = [DeadLetter.model_validate_json(v) for v in pipeline.read(pipeline.topics.dlq)]
        codes = Counter(letter.code.value for letter in letters if letter.code)
        assert {"malformed_json", "too_large", "unknown_kind", "deleted", "edited"} <= set(codes), codes
        assert all(letter.source == "bluesky" and letter.reason for letter in letters)
        pipeline.stop()
        saved = CursorFile(tmp_path / "cursor.json").load()
        assert saved.cursor == max(json.loads(f).get("time_us", 0) for f in frames if f.endswith("}"))
    finally:
        pipeline.stop()
        server.stop()


def mastodon_status(number: int, text: str) -> dict:
    created = datetime.now(UTC) - timedelta(minutes=5) + timedelta(seconds=number)
    return {
        "id": str(110_000_000_000_000_000 + number),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "content": f"<p>{text}</p>",
        "language": "en",
        "url": f"https://mastodon.example/@user{number}/{number}",
        "account": {"acct": f"user{number}@mastodon.example", "followers_count": number},
        "mentions": [],
        "tags": [],
        "reblog": None,
        "favourites_count": 1,
        "reblogs_count": 0,
        "replies_count": 0,
    }


def test_every_matching_mastodon_status_arrives_once_and_a_gap_is_filled_from_the_timeline(
    pipeline_factory, tmp_path: Path
) -> None:
    lines: list[str] = []
    expected: set[tuple[str, str]] = set()
    for number in range(1, 61):
        matching = number % 2 == 1
        text = f"@<span>NimbusBankHelp</span> my card fails, {number}" if matching else f"cats, {number}"
        status = mastodon_status(number, text)
        if matching:
            status["mentions"] = [{"acct": "NimbusBankHelp@bank.example"}]
            expected.add(("nimbus-bank", status["id"]))
        lines.append(json.dumps({"event": "update", "data": json.dumps(status)}))
        if number == 8:
            lines.append(json.dumps({"event": "update", "data": "{not json"}))
            lines.append(json.dumps({"event": "notification", "data": "{}"}))
            lines.append(json.dumps({"event": "delete", "data": str(110_000_000_000_000_001)}))
    server = FrameServer("mastodon", lines, rate=15, disconnect_after=[15]).start()
    pipeline = pipeline_factory()
    listener_env(pipeline, tmp_path, LISTENER_STREAM_SILENT_AFTER_S="30")
    try:
        restart_midway(
            pipeline,
            "listener",
            ["mastodon", "--instance", server.url],
            'outcome="matched"',
            12,
            len(expected),
        )
        try:
            wait_until(lambda: len(pipeline.read(pipeline.topics.raw)) >= len(expected), "every status", 120, every=1)
        except AssertionError as error:
            shown = [line for line in pipeline.metrics("listener").splitlines() if "_total{" in line]
            raise AssertionError(f"{error}; listener: {shown}") from None
        assert_exactly_once(pipeline, expected)
        codes = {DeadLetter.model_validate_json(v).code for v in pipeline.read(pipeline.topics.dlq)}
        assert {"malformed_json", "unknown_kind", "deleted"} <= {c.value for c in codes if c}
        [mention] = [
            Mention.model_validate_json(v) for v in pipeline.read(pipeline.topics.raw) if b'"110000000000000001"' in v
        ]
        assert (mention.author_followers, mention.lang, mention.source) == (1, "en", "mastodon:127.0.0.1")
    finally:
        pipeline.stop()
        server.stop()


def test_with_the_broker_frozen_the_listener_stops_reading_and_loses_nothing(pipeline_factory, tmp_path: Path) -> None:
    padding = "p" * 16_000  # large frames: the backlog (64 MB) outgrows the kernel's socket buffers (tcp_rmem)
    frames = [
        json.dumps(jetstream_event(number, f"Acme Air flight {number} delayed", embed={"note": padding}))
        for number in range(1, 4001)
    ]
    expected = {("acme-air", f"at://did:plc:author{n % 7}/{BLUESKY_POST}/post{n}") for n in range(1, 4001)}
    server = FrameServer("bluesky", frames, rate=400).start()
    with EmbeddedBroker(port=free_port(), partitions=2, log_file=tmp_path / "broker.log") as frozen:
        pipeline = pipeline_factory(broker=frozen)
        listener_env(pipeline, tmp_path, LISTENER_STREAM_QUEUE_SIZE="50", LISTENER_STREAM_BATCH="10")
        pipeline.env["LISTENER_STREAM_MAX_FRAME_BYTES"] = "65536"
        pipeline.env["KAFKA_REQUEST_TIMEOUT_MS"] = "60000"  # a slow broker, not a lost one: no request times out
        try:
            pipeline.start("listener", "bluesky", "--url", server.url)
            pipeline.wait_for_metric("listener", "crisiswatch_listener_stream_frames_total", "matched", 20, 120)
            resident = "process_resident_memory_bytes"
            before = metric_value(pipeline.metrics("listener"), resident)
            os.kill(frozen._process.pid, signal.SIGSTOP)
            try:
                depth = "crisiswatch_listener_stream_queue_depth"
                wait_until(lambda: metric_value(pipeline.metrics("listener"), depth) >= 50, "a full queue", 60)
                samples = [server.sent]

                def stalled() -> bool:
                    samples.append(server.sent)
                    return len(samples) >= 3 and samples[-1] == samples[-3]

                # The network sends what the kernel's socket buffers take (tcp_rmem: up to tens of MB), then stalls.
                wait_until(stalled, "the network to stop getting frames through", 60, every=1.0)
                text = pipeline.metrics("listener")
                taken = metric_value(text, "crisiswatch_listener_stream_frames_total", "matched")
                grown_mib = (metric_value(text, resident) - before) / 2**20
                offered_mib = (server.sent - taken) * len(frames[-1]) / 2**20
                print(
                    f"frozen: {server.sent - taken:.0f} frames ({offered_mib:.0f} MiB) sent and not taken; "
                    f"the listener grew {grown_mib:.0f} MiB; published {server.published}"
                )
                assert metric_value(text, depth) == 50, "the queue never grows past its size"
                assert offered_mib > 40, "the network offered more than the listener may hold"
                assert grown_mib < 32, "the listener did not buffer what it was offered"
            finally:
                os.kill(frozen._process.pid, signal.SIGCONT)
            # Read, not the topic's end offsets: the embedded broker's high-water mark lags after a SIGSTOP.
            assert len(pipeline.read(pipeline.topics.raw, at_least=len(expected), timeout=240)) >= len(expected)
            assert_exactly_once(pipeline, expected)
        finally:
            pipeline.stop()
            server.stop()
