"""``crisiswatch replay``: publish a recorded stream into a Kafka namespace, with its timing, beside live traffic.

Records go through the listener's own validation (brands, field mapping,
dead letters) into ``<namespace>mentions.raw``; services started with
``KAFKA_TOPIC_PREFIX=<namespace>`` then score and alert on it with consumer
groups of their own, so live topics, live groups and live Slack channels are
untouched. Export formats: JSONL/CSV with a field mapping, or a preset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from crisiswatch.ingest.records import DEFAULT_MAPPING, FieldMapping, recording_span, zone_for
from crisiswatch.ingest.sources import RawRecord, event_time, read_file


@dataclass(frozen=True)
class Preset:
    """A common export format: how to read the file and where our fields are in its records."""

    description: str
    mapping: FieldMapping
    x_api_v2: bool = False


PRESETS = {
    "jsonl": Preset("our own JSONL/CSV field names (id, text, created_at, author_handle...)", DEFAULT_MAPPING),
    "generic-csv": Preset(
        "CSV with id, text, created_at and author columns", FieldMapping(author_handle="author", brand="brand")
    ),
    "x-api-v2": Preset(
        "X/Twitter API v2 search/stream responses (one JSON page or tweet per line; includes.users joined)",
        FieldMapping(
            author_handle="author.username",
            author_followers="author.public_metrics.followers_count",
            likes="public_metrics.like_count",
            reposts="public_metrics.retweet_count",
            replies="public_metrics.reply_count",
        ),
        x_api_v2=True,
    ),
}


def read_x_api_v2(path: Path) -> Iterator[RawRecord]:
    """Tweets from an API v2 dump, each with its author from ``includes.users`` and a status URL.

    A line may be a whole response page (``{"data": [...], "includes": {...}}``),
    a streamed envelope (``{"data": {...}, "includes": {...}}``) or a bare tweet.
    A line that is not JSON passes through as bytes and is dead-lettered downstream.
    """
    for line in read_file(path):
        if not isinstance(line, bytes):
            yield line
            continue
        try:
            page = json.loads(line)
        except (ValueError, RecursionError):
            yield line
            continue
        if not isinstance(page, dict):
            yield line
            continue
        tweets = page.get("data", page)
        users = {
            user.get("id"): user for user in (page.get("includes") or {}).get("users", []) if isinstance(user, dict)
        }
        for tweet in tweets if isinstance(tweets, list) else [tweets]:
            if not isinstance(tweet, dict):
                yield json.dumps(tweet).encode()
                continue
            author = users.get(tweet.get("author_id")) or tweet.get("author") or {}
            record = {**tweet, "author": author}
            if author.get("username") and tweet.get("id"):
                record.setdefault("url", f"https://x.com/{author['username']}/status/{tweet['id']}")
            yield record


def records_for(path: Path, preset: Preset) -> Iterator[RawRecord]:
    """The file's raw records as the preset reads them."""
    return read_x_api_v2(path) if preset.x_api_v2 else read_file(path)


def mapping_for(preset: str, spec: str = "", timezone: str = "UTC") -> FieldMapping:
    """The preset's field mapping with the fields named in ``spec`` overridden, reading naive times in ``timezone``.

    Raises ``ValueError`` for an unknown preset, a bad spec or an unknown zone.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    given = FieldMapping.parse(spec) if spec else DEFAULT_MAPPING
    changed = {name: value for name, value in vars(given).items() if value != getattr(DEFAULT_MAPPING, name)}
    return replace(PRESETS[preset].mapping, **changed, timezone=zone_for(timezone).key)


def event_span(
    records: Iterator[RawRecord], mapping: FieldMapping, accept: Callable[[datetime], bool] = lambda _: True
) -> tuple[datetime | None, datetime | None]:
    """The first and last readable event times of a file that ``accept`` takes (for the progress bar)."""
    first = last = None
    for record in records:
        moment = event_time(record, mapping)
        if moment is not None and accept(moment):
            first = moment if first is None or moment < first else first
            last = moment if last is None or moment > last else last
    return first, last


def run_replay(
    path: Path,
    namespace: str,
    speed: float,
    preset: Preset,
    mapping: FieldMapping,
    brands: Path,
) -> dict[str, int]:
    """Publish ``path`` into ``namespace`` through the listener, with a progress bar; returns counts by outcome.

    A replay is history: mentions of any age are taken, judged against the
    file's own span of times (:func:`recording_span`), never the clock. Those
    dated far outside it are dead-lettered like any rejection and also
    counted apart as ``out_of_range``.
    """
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from crisiswatch.contracts.schemas import RejectionCode
    from crisiswatch.contracts.topics import Topics
    from crisiswatch.ingest.brands import BrandCatalog
    from crisiswatch.ingest.sources import paced
    from crisiswatch.listener.service import OUT_OF_RANGE, Listener, Outcome
    from crisiswatch.listener.settings import ListenerSettings
    from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, ensure_topics
    from crisiswatch.runtime.stop_signal import StopSignal

    if not namespace:
        raise ValueError("a replay needs a namespace (e.g. 'replay.'): it never writes to the live topics")
    kafka = KafkaSettings()
    topics = Topics(namespace)
    ensure_topics(kafka, topics.all(), kafka.topic_partitions)
    producer = AckedProducer.for_settings(kafka, "crisiswatch-replay")
    times = (event_time(record, mapping) for record in records_for(path, preset))
    bounds = ListenerSettings().event_time_bounds(history=True, span=recording_span(t for t in times if t is not None))
    listener = Listener(producer, topics, BrandCatalog.from_file(brands), mapping, bounds=bounds)
    first, last = event_span(records_for(path, preset), mapping, listener.takes_time)
    span = max(1.0, (last - first).total_seconds()) if first and last else 1.0
    counts = {outcome.value: 0 for outcome in Outcome} | {OUT_OF_RANGE: 0}
    stop = StopSignal()
    started = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]:>8.0f} records/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task(f"replaying {path.name} into {namespace}*", total=span, rate=0.0)
        for record in paced(
            records_for(path, preset), speed, mapping, should_stop=stop.is_set, accept=listener.takes_time
        ):
            raw = record if isinstance(record, bytes) else dict(record)
            outcome, rejection = listener.accept(raw, f"replay:{path.name}")
            counts[outcome.value] += 1
            if rejection is not None and rejection.code is RejectionCode.TIME_OUT_OF_RANGE:
                counts[OUT_OF_RANGE] += 1
                continue
            moment = event_time(record, mapping)
            done = sum(counts[kind.value] for kind in Outcome)
            rate = done / max(time.monotonic() - started, 1e-6)
            if moment is not None and first is not None:
                position = f"{moment:%Y-%m-%d %H:%M} UTC"
                progress.update(task, completed=(moment - first).total_seconds(), rate=rate, description=position)
            else:
                progress.update(task, rate=rate)
        listener.flush()
        progress.update(task, completed=span)
    return counts
