"""Listener entry point: ``crisiswatch listener COMMAND`` (or ``python -m crisiswatch.listener``)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from crisiswatch.contracts.schemas import RejectionCode, validation_problems
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.records import DEFAULT_MAPPING, FieldMapping, recording_span
from crisiswatch.ingest.scenario import demo_history, demo_scenario, generate
from crisiswatch.ingest.sources import RawRecord, event_time, paced, read_file
from crisiswatch.runtime.health import BrokerWatch, Health, HealthSettings
from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, MetadataQuestion, ensure_topics
from crisiswatch.runtime.logs import configure_logging
from crisiswatch.runtime.metrics import serve_metrics
from crisiswatch.runtime.stop_signal import StopSignal

from . import metrics
from .dedup import RecentIds
from .ratelimit import TokenBuckets
from .service import OUT_OF_RANGE, Listener, Outcome
from .settings import ListenerSettings

if TYPE_CHECKING:
    from .streams import Session

log = logging.getLogger("crisiswatch.listener")
cli = typer.Typer(
    help="Bring mentions in: replay a file, play a scenario, serve HTTP ingest, or listen to Bluesky or Mastodon.",
    no_args_is_help=True,
)


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


NETWORK_MAPPING = FieldMapping(lang_is_posts_own=True)
"""How a live network's post arrives at the listener: default fields, and its own language tag wins."""


def _live(
    settings: ListenerSettings,
    source: str,
    history: bool,
    session: Session,
    errors: tuple[type[BaseException], ...],
    ordered: bool = True,
) -> None:
    """Run one live source until SIGTERM: the listener, its probes and its position file."""
    import asyncio

    from crisiswatch.runtime.health import BrokerWatch

    from .streams import CursorFile, StreamPump, serve_source

    kafka, probes = KafkaSettings(), HealthSettings()
    health = probes.health()
    listener = _listener(settings, kafka, NETWORK_MAPPING, confirm_every=None, history=history, health=health)
    cursor_path = settings.stream_cursor_file or Path(".crisiswatch/cursors") / f"{source.replace(':', '-')}.json"
    BrokerWatch(health, MetadataQuestion(kafka, "crisiswatch-listener-health"), probes.broker_check_s).start()
    stop = StopSignal()

    async def run() -> None:
        pump = StreamPump(
            listener,
            listener.catalog,
            source,
            CursorFile(cursor_path),
            health,
            queue_size=settings.stream_queue_size,
            batch=settings.stream_batch,
            silent_after_s=settings.stream_silent_after_s,
            cursor_save_s=settings.stream_cursor_save_s,
            ordered=ordered,
        )
        await serve_source(pump, session, errors, settings, stop.is_set)

    log.info("listening", extra={"source": source, "cursor_file": str(cursor_path)})
    asyncio.run(run())
    log.info("stopped", extra={"source": source})


BrandsOption = Annotated[
    Path | None,
    typer.Option("--brands", exists=True, dir_okay=False, help="brands.toml to match (default: LISTENER_BRANDS_FILE)"),
]
HistoryOption = Annotated[
    bool,
    typer.Option("--history", help="take posts of any age (1970-2200), judged against the stream's own span"),
]


def _with_brands(brands: Path | None, **changes: object) -> ListenerSettings:
    settings = ListenerSettings()
    update = {k: v for k, v in {"brands_file": brands, **changes}.items() if v is not None}
    return settings.model_copy(update=update)


@cli.command()
def bluesky(
    brands: BrandsOption = None,
    url: Annotated[str | None, typer.Option(help="Jetstream URL (default: LISTENER_BLUESKY_JETSTREAM_URL)")] = None,
    history: HistoryOption = False,
) -> None:
    """Listen to Bluesky's public posts (Jetstream) for the brands until SIGTERM; resumes where the broker left off."""
    from .streams import jetstream_session, websocket_errors

    settings = _with_brands(brands, bluesky_jetstream_url=url)
    session = jetstream_session(settings, settings.bluesky_jetstream_url)
    _live(settings, "bluesky", history, session, websocket_errors())


@cli.command()
def mastodon(
    instance: Annotated[
        str | None, typer.Option(help="the server, e.g. https://mastodon.social (default: LISTENER_MASTODON_INSTANCE)")
    ] = None,
    timeline: Annotated[
        str | None, typer.Option(help="public, public:local or hashtag:NAME (default: LISTENER_MASTODON_TIMELINE)")
    ] = None,
    brands: BrandsOption = None,
    history: HistoryOption = False,
) -> None:
    """Listen to a Mastodon server's public timeline for the brands until SIGTERM; fills a gap from its pages."""
    from .streams import MastodonTimeline, mastodon_errors, mastodon_session, mastodon_source_name

    settings = _with_brands(brands, mastodon_instance=instance, mastodon_timeline=timeline)
    try:
        ListenerSettings.model_validate(settings.model_dump())
    except ValidationError as error:
        raise typer.BadParameter(validation_problems(error, limit=2)) from None
    if not settings.mastodon_instance:
        raise typer.BadParameter("name the server: --instance https://mastodon.example (or LISTENER_MASTODON_INSTANCE)")
    server = settings.mastodon_instance.rstrip("/")
    server = server if "://" in server else f"https://{server}"
    session = mastodon_session(settings, MastodonTimeline(server, settings.mastodon_timeline))
    _live(settings, mastodon_source_name(server), history, session, mastodon_errors(), ordered=False)


@cli.command()
def frames(
    network: Annotated[str, typer.Argument(help="bluesky (Jetstream over WebSocket) or mastodon (streaming API, SSE)")],
    recording: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="one frame per line; default: the built-in demo scenario"),
    ] = None,
    port: Annotated[int, typer.Option(help="port to serve on; 0 picks a free one")] = 0,
    rate: Annotated[float, typer.Option(min=0, help="frames per second; 0 = all at once")] = 50.0,
    disconnect_after: Annotated[
        list[int] | None, typer.Option(help="drop the Nth connection after this many frames (repeat per connection)")
    ] = None,
    write: Annotated[Path | None, typer.Option(help="write the frames to this file instead of serving them")] = None,
) -> None:
    """Serve recorded frames as Bluesky's Jetstream or a Mastodon server does: a live source with no network.

    Point ``crisiswatch listener bluesky --url`` (or ``mastodon --instance``)
    at the URL it prints.
    """
    import asyncio

    from .frame_server import NETWORKS, FrameServer, read_recording, scenario_frames

    if network not in NETWORKS:
        raise typer.BadParameter(f"network must be one of {', '.join(NETWORKS)}")
    lines = read_recording(recording) if recording else list(scenario_frames(generate(demo_scenario()), network))
    if write is not None:
        write.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return
    configure_logging("INFO")
    server = FrameServer(network, lines, rate, disconnect_after or (), port=port)

    async def run() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.ready.is_set():
            await asyncio.sleep(0.05)
        typer.echo(f"serving {len(lines)} {network} frames at {server.url}", err=True)
        await serving

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


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
