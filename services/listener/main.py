"""Listener entry point: ``crisiswatch listener replay|scenario|serve`` (or ``python -m crisiswatch.listener``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from crisiswatch.contracts.schemas import RejectionCode
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.records import DEFAULT_MAPPING, FieldMapping, recording_span
from crisiswatch.ingest.scenario import demo_history, demo_scenario, generate
from crisiswatch.ingest.sources import RawRecord, event_time, paced, read_file
from crisiswatch.runtime.health import BrokerWatch, Health, HealthSettings
from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, MetadataQuestion, ensure_topics
from crisiswatch.runtime.lifecycle import StopSignal
from crisiswatch.runtime.logs import configure_logging
from crisiswatch.runtime.metrics import serve_metrics

from . import metrics
from .dedup import RecentIds
from .ratelimit import TokenBuckets
from .service import OUT_OF_RANGE, Listener, Outcome
from .settings import ListenerSettings

log = logging.getLogger("crisiswatch.listener")
cli = typer.Typer(help="Bring mentions in: replay a file, play a scenario, or serve HTTP ingest.", no_args_is_help=True)


def _listener(
    settings: ListenerSettings,
    kafka: KafkaSettings,
    mapping: FieldMapping,
    confirm_every: int | None = 1000,
    history: bool = False,
    health: Health | None = None,
    span: tuple[datetime, datetime] | None = None,
) -> Listener:
    configure_logging(settings.log_level)
    serve_metrics(settings.metrics_port, "listener", health=health)
    catalog = BrandCatalog.from_file(settings.brands_file)
    ensure_topics(kafka, Topics(kafka.topic_prefix).all(), kafka.topic_partitions)
    producer = acked_producer(kafka, "crisiswatch-listener")
    recent = RecentIds(settings.dedup_capacity)
    bounds = settings.event_time_bounds(history, span)
    return Listener(producer, Topics(kafka.topic_prefix), catalog, mapping, recent, confirm_every, bounds)


def acked_producer(kafka: KafkaSettings, client_id: str) -> AckedProducer:
    """The listener's producer: refused records are counted per topic and sent again."""
    return AckedProducer.for_settings(
        kafka, client_id, on_failure=lambda topic, count: metrics.PRODUCE_ERRORS.labels(topic).inc(count)
    )


def pump(listener: Listener, records: Iterable[RawRecord], source: str) -> dict[str, int]:
    """Feed records through the listener, flush, and return counts by outcome.

    ``out_of_range`` counts the rejections for a time outside the accepted span
    (they are in ``rejected`` too): a replay reports the rows it skipped.
    """
    counts = {outcome.value: 0 for outcome in Outcome} | {OUT_OF_RANGE: 0}
    for record in records:
        raw = record if isinstance(record, bytes) else dict(record)
        outcome, rejection = listener.accept(raw, source)
        counts[outcome.value] += 1
        if rejection is not None and rejection.code is RejectionCode.TIME_OUT_OF_RANGE:
            counts[OUT_OF_RANGE] += 1
    listener.flush()
    return counts


@cli.command()
def replay(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV file of mentions")],
    speed: Annotated[float, typer.Option(help="recorded time / wall time; 0 = as fast as possible")] = 0.0,
    mapping: Annotated[str, typer.Option(help="field mapping, e.g. 'text=full_text,created_at=ts'")] = "",
    history: Annotated[
        bool,
        typer.Option(
            "--history",
            help="the file is history: accept any age, judged against the file's own span of times "
            "(live bounds otherwise: LISTENER_MAX_AGE_HOURS against this clock)",
        ),
    ] = False,
) -> None:
    """Replay a recorded file into ``mentions.raw`` with its timing scaled by ``--speed``.

    Mentions dated outside the accepted span (ahead of this clock, or older
    than live ingest takes; with ``--history``, far outside the file's own
    span of times) go to the dead-letter topic with the reason and are not paced.
    """
    field_mapping = FieldMapping.parse(mapping)
    span = None
    if history:
        times = (event_time(record, field_mapping) for record in read_file(path))
        span = recording_span(t for t in times if t is not None)
    listener = _listener(ListenerSettings(), KafkaSettings(), field_mapping, history=history, span=span)
    stop = StopSignal()
    records = paced(read_file(path), speed, field_mapping, should_stop=stop.is_set, accept=listener.takes_time)
    counts = pump(listener, records, source=f"file:{path.name}")
    log.info("replay finished", extra={"file": str(path), **counts})


@cli.command()
def scenario(
    speed: Annotated[float, typer.Option(help="scenario time / wall time; 0 = as fast as possible")] = 600.0,
    output: Annotated[Path | None, typer.Option(help="write the scenario to this JSONL file instead of Kafka")] = None,
    start: Annotated[str, typer.Option(help="scenario start, ISO-8601 UTC")] = "2026-03-02T06:00:00+00:00",
    history_days: Annotated[
        int, typer.Option(min=0, help="play the brands' calm DAYS before the scenario instead (history to seed from)")
    ] = 0,
) -> None:
    """Play the built-in demo scenario (four brands, an English and a Hebrew outage storm) into ``mentions.raw``.

    A scenario is history by construction (it starts on a fixed date), so it
    is taken within the ``--history`` bounds.
    """
    moment = datetime.fromisoformat(start).astimezone(UTC)
    story = demo_history(history_days, moment) if history_days else demo_scenario(moment)
    if output is not None:
        with output.open("w", encoding="utf-8") as handle:
            for record in generate(story):
                handle.write(json.dumps(record) + "\n")
        return
    listener = _listener(ListenerSettings(), KafkaSettings(), DEFAULT_MAPPING, history=True)
    stop = StopSignal()
    records = paced(generate(story), speed, should_stop=stop.is_set, accept=listener.takes_time)
    counts = pump(listener, records, source=f"scenario:{story.name}")
    log.info("scenario finished", extra={"scenario": story.name, **counts})


@cli.command()
def serve() -> None:
    """Serve ``POST /v1/mentions`` until SIGTERM."""
    from aiohttp import web

    from .ingest_http import build_app

    settings = ListenerSettings()
    configure_logging(settings.log_level)
    try:
        clients = settings.ingest_clients()
    except ValueError as error:
        log.error("refusing to serve ingest", extra={"error": str(error)})
        raise typer.Exit(2) from None
    if clients is None:
        log.warning("LISTENER_INGEST_ALLOW_ANONYMOUS is set: the ingest endpoint accepts unauthenticated requests")
    else:
        log.info("serving ingest", extra={"clients": sorted(clients)})
    kafka, probes = KafkaSettings(), HealthSettings()
    health = probes.health()
    listener = _listener(settings, kafka, DEFAULT_MAPPING, confirm_every=None, health=health)
    limits = TokenBuckets(settings.rate_limit_per_s, settings.rate_burst) if settings.rate_limit_per_s else None
    app = build_app(listener, settings, clients, limits, health)
    BrokerWatch(health, MetadataQuestion(kafka, "crisiswatch-listener-health"), probes.broker_check_s).start()
    web.run_app(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        keepalive_timeout=settings.header_timeout_s,
        print=None,
        handle_signals=True,
    )


def main() -> None:
    """Console entry point."""
    cli()
