"""The ``crisiswatch`` command: every service, the embedded broker, the demo and the model tools.

The services and the model tools are mounted by name and help only, and
imported when one of their commands runs (or its own ``--help`` is asked for),
so ``crisiswatch --help`` answers at once and an image installed with one
service's extra never imports another's libraries. The other commands import
what they need inside themselves, for the same reason.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.config import DetectorConfig, Sensitivity
from crisiswatch.runtime.logs import configure_logging

Command = TyperCommand | TyperGroup


@dataclass(frozen=True)
class Deferred:
    """A command or sub-app known by name and help until it runs; ``load`` imports and builds it.

    ``requires`` are the libraries it cannot run without; when one is not
    installed, the command stays listed and says which ``extra`` to install.
    """

    name: str
    help: str
    load: Callable[[], Command]
    requires: tuple[str, ...]
    extra: str

    def available(self) -> bool:
        """Whether every library it requires is installed (looked up, not imported)."""
        return all(_installed(module) for module in self.requires)


def _installed(module: str) -> bool:
    """Whether a top-level module is imported already or can be (some, like faust, leave no ``__spec__``)."""
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:
        return False


class _StandIn(TyperCommand):
    """What the top-level listing shows for a deferred command: its name and help, nothing imported."""

    def __init__(self, deferred: Deferred) -> None:
        super().__init__(deferred.name, help=deferred.help)
        self.deferred = deferred


def _unavailable(deferred: Deferred) -> Command:
    """A command that explains which extra to install, accepting (and ignoring) whatever follows it."""
    install = f"pip install 'crisiswatch[{deferred.extra}]'"

    def refuse() -> None:
        needs = ", ".join(deferred.requires)
        raise typer.BadParameter(f"{deferred.name} needs the {deferred.extra} extra ({needs}): {install}")

    return TyperCommand(
        deferred.name,
        callback=refuse,
        # The backslash keeps rich markup from reading "[extra]" as a style.
        help=f"Unavailable: install the {deferred.extra} extra (pip install 'crisiswatch\\[{deferred.extra}]').",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )


class _DeferringGroup(TyperGroup):
    """The top-level group: lists :data:`DEFERRED` commands by name and builds one only when it is resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for deferred in DEFERRED:
            self.commands[deferred.name] = _StandIn(deferred) if deferred.available() else _unavailable(deferred)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """Resolve as click does, then swap a stand-in for the real command (importing it now)."""
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _StandIn):
            command = command.deferred.load()
            command.name = name
        return name, command, rest


def _sub_app(module: str) -> Callable[[], Command]:
    """A loader for the Typer app ``cli`` of ``module``, built as ``app.add_typer`` would build it."""

    def load() -> Command:
        return typer.main.get_group(importlib.import_module(module).cli)

    return load


def _load_alerter() -> Command:
    """The alerter's own commands, and ``seed``, which needs the analysis tools as well."""
    from crisiswatch.alerter.main import cli

    if not any(command.name == "seed" for command in cli.registered_commands):
        cli.command("seed")(alerter_seed)
    return typer.main.get_group(cli)


def _load_model_tools() -> Command:
    """``model train|eval``: the model stack is imported by the commands themselves."""
    from crisiswatch.modeling.cli import model_cli

    return typer.main.get_group(model_cli)


def _single(module: str, function: str, name: str) -> Callable[[], Command]:
    """A loader for one command function of ``module``, built as ``app.command`` would build it."""

    def load() -> Command:
        single = typer.Typer(add_completion=False)
        single.command(name)(getattr(importlib.import_module(module), function))
        return typer.main.get_command(single)

    return load


def _load_classify() -> Command:
    """``classify``, a single command, built as ``app.command`` would build it."""
    from crisiswatch.modeling.cli import classify

    single = typer.Typer(add_completion=False)
    single.command("classify")(classify)
    return typer.main.get_command(single)


_MODEL_STACK = ("torch", "transformers", "sklearn")
DEFERRED: tuple[Deferred, ...] = (
    Deferred(
        "classify",
        "Score texts (plain lines, JSONL with ``text``, or CSV), each with its language's model, as JSONL.",
        _load_classify,
        _MODEL_STACK,
        "classifier",
    ),
    Deferred(
        "listener",
        "Bring mentions in: replay a file, play a scenario, serve HTTP ingest, or listen to Bluesky or Mastodon.",
        _sub_app("crisiswatch.listener.main"),
        ("aiohttp",),
        "listener",
    ),
    Deferred(
        "alerter",
        "Detect crises in scored mentions and alert the service team.",
        _load_alerter,
        ("faust", "slack_sdk", "scipy", "matplotlib", "sklearn"),
        "alerter",
    ),
    Deferred(
        "classifier",
        "Score mention sentiment: the stream service.",
        _sub_app("crisiswatch.classifier.main"),
        _MODEL_STACK,
        "classifier",
    ),
    Deferred("model", "Train and evaluate the sentiment models.", _load_model_tools, _MODEL_STACK, "classifier"),
    Deferred(
        "themes",
        "Group posts into themes by meaning; one JSON line per input line: id, theme, theme_id, duplicate_of.",
        _single("crisiswatch.analysis.theme_evaluation", "themes_command", "themes"),
        ("sklearn",),
        "analysis",
    ),
    Deferred(
        "eval-themes",
        "Score themes and the baselines on every real labelled set, whole and at alert size (40-150 posts).",
        _single("crisiswatch.analysis.theme_evaluation", "eval_themes_command", "eval-themes"),
        ("sklearn",),
        "analysis",
    ),
)
"""The commands mounted by name; each help must read as the loaded command's (``tests/unit/test_layout.py`` checks)."""

app = typer.Typer(
    help="crisiswatch: real-time social-listening crisis detection.", no_args_is_help=True, cls=_DeferringGroup
)


@app.command()
def broker(
    host: str = "127.0.0.1",
    port: int = 9092,
    partitions: Annotated[int, typer.Option(min=1, help="partitions per topic")] = 1,
    topic_prefix: str = "",
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) and create the topics; Ctrl-C stops it."""
    from crisiswatch.runtime.broker import EmbeddedBroker

    configure_logging("INFO")
    log = logging.getLogger("crisiswatch.runtime.broker")
    with EmbeddedBroker(host, port, partitions, Topics(topic_prefix)) as running:
        log.info("broker listening; Ctrl-C stops it", extra={"bootstrap_servers": running.bootstrap_servers})
        try:
            while running.is_running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="scenario minutes per wall second × 60")] = 600.0,
    port: Annotated[int, typer.Option(help="broker port; 0 picks a free one")] = 0,
    source: Annotated[
        str, typer.Option(help="scenario, or bluesky / mastodon: the scenario heard as that network's live stream")
    ] = "scenario",
    frames: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="with a network source: a recording to serve instead"),
    ] = None,
) -> None:
    """Run broker, listener, classifier and alerter on the built-in scenario and show the alert."""
    from crisiswatch.demo import SOURCES, run_demo

    if source not in SOURCES:
        raise typer.BadParameter(f"--source must be one of {', '.join(SOURCES)}")
    raise typer.Exit(run_demo(speed=speed, port=port, source=source, frames=frames))


@app.command()
def backtest(
    mentions: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV of mentions with timestamps")
    ] = None,
    counts: Annotated[
        Path | None, typer.Option("--counts", exists=True, dir_okay=False, help="NAB-format timestamp,value series")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="with --counts: the CSV to write; with MENTIONS: the report folder (runs/backtest-NAME)"),
    ] = None,
    sensitivity: Annotated[Sensitivity, typer.Option(help="fewer, balanced or more alerts")] = Sensitivity.BALANCED,
    bucket_minutes: Annotated[float, typer.Option(min=0.1, help="bucket width")] = 1.0,
    lateness_minutes: Annotated[float, typer.Option(min=0, help="how late a mention may arrive")] = 2.0,
    brands: Annotated[Path | None, typer.Option(exists=True, help="brands.toml (default: the built-in one)")] = None,
    mapping: Annotated[str, typer.Option(help="field mapping, e.g. text=full_text,created_at=time")] = "",
    label_field: Annotated[str, typer.Option(help="rows with this field (negative/...) skip the model")] = "sentiment",
    model: Annotated[str, typer.Option(help="model for unlabelled rows: default, a path or a HF id")] = "default",
    compare: Annotated[
        list[Path] | None,
        typer.Option(exists=True, dir_okay=False, help="settings file (TOML) to compare; repeat for each run"),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="known incidents (CSV brand,start,end)")
    ] = None,
    seed: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="recorded history (JSONL/CSV) to start the brands warm from"),
    ] = None,
    verdicts: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="team verdicts to replay (CSV brand,at[,verdict])"),
    ] = None,
) -> None:
    """Run the live detector offline: over recorded MENTIONS (report + incidents) or a --counts series."""
    if (mentions is None) == (counts is None):
        raise typer.BadParameter("give either a MENTIONS file or --counts SERIES.csv")
    if counts is not None and (seed or verdicts or compare):
        raise typer.BadParameter("--seed, --verdicts and --compare work on MENTIONS, not on a --counts series")
    if counts is not None:
        from crisiswatch.analysis.counts import detect, read_series, write_points

        if output is None:
            raise typer.BadParameter("--counts needs --output OUT.csv")
        points = list(detect(read_series(counts), DetectorConfig(sensitivity=sensitivity)))
        write_points(points, output)
        typer.echo(f"{len(points)} buckets, {sum(p.alert for p in points)} alerts -> {output}")
        return
    assert mentions is not None
    from crisiswatch.analysis.backtest import load_verdicts, seed_states
    from crisiswatch.analysis.backtest_command import load_with_progress, run_comparison, run_mentions_backtest
    from crisiswatch.analysis.compare import load_known, load_settings

    directory = output or Path("runs") / f"backtest-{mentions.stem}"
    try:
        runs = [load_settings(path) for path in compare or []]
        known = load_known(labels) if labels else []
        team = load_verdicts(verdicts) if verdicts else []
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if runs and team:
        raise typer.BadParameter("--compare runs replay no verdicts; drop --verdicts")
    labelled = load_with_progress(mentions, brands, mapping, label_field, model)
    history = load_with_progress(seed, brands, mapping, label_field, model).loaded.mentions if seed else []
    if runs:
        run_comparison(labelled, mentions, directory, runs, known, history)
        return
    config = DetectorConfig(bucket=timedelta(minutes=bucket_minutes), sensitivity=sensitivity)
    lateness = timedelta(minutes=lateness_minutes)
    seeds = seed_states(history, config, lateness) if history else None
    if seed is not None and not seeds:
        raise typer.BadParameter(f"{seed} holds no mention of a known brand to start from")
    run_mentions_backtest(labelled, mentions, directory, config, lateness, seeds, team)


def alerter_seed(
    history: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="recorded mentions (JSONL or CSV)")],
    brands: Annotated[Path | None, typer.Option(exists=True, help="brands.toml (default: the built-in one)")] = None,
    mapping: Annotated[str, typer.Option(help="field mapping, e.g. text=full_text,created_at=time")] = "",
    label_field: Annotated[str, typer.Option(help="rows with this field (negative/...) skip the model")] = "sentiment",
    model: Annotated[str, typer.Option(help="model for unlabelled rows: default, a path or a HF id")] = "default",
    force: Annotated[bool, typer.Option(help="seed even when the broker cannot say whether the alerter runs")] = False,
) -> None:
    """Start brands warm: learn each brand's normal from HISTORY and load it into the stopped alerter's state.

    Uses the alerter's own settings (ALERTER_*, KAFKA_*); run it while the
    alerter is stopped, then start the alerter, which restores the seeded
    state with the rest of its tables.
    """
    from kafka.errors import KafkaError

    from crisiswatch.alerter.seeding import SeedRefused, write_seeds
    from crisiswatch.alerter.settings import AlerterSettings
    from crisiswatch.analysis.backtest import seed_states
    from crisiswatch.analysis.backtest_command import load_with_progress
    from crisiswatch.runtime.kafka import KafkaSettings

    settings, kafka = AlerterSettings(), KafkaSettings()
    config = DetectorConfig(bucket=timedelta(minutes=settings.bucket_minutes), sensitivity=settings.sensitivity)
    labelled = load_with_progress(history, brands, mapping, label_field, model)
    states = seed_states(labelled.loaded.mentions, config, timedelta(minutes=settings.lateness_minutes))
    if not states:
        raise typer.BadParameter(f"{history} holds no mention of a known brand")
    try:
        topic = write_seeds(states, settings, kafka, force)
    except (SeedRefused, ConnectionError, KafkaError) as error:
        typer.echo(f"not seeded: {error}", err=True)
        raise typer.Exit(1) from None
    for brand, state in states.items():
        days = state.memory.hours_known / 24
        status = "learning" if state.learning(config) else "warm"
        typer.echo(f"{brand}: {days:.1f} days of history, {status}")
    typer.echo(f"seeded {len(states)} brands into {topic}; start the alerter to load them")


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="recorded mentions (JSONL or CSV)")],
    namespace: Annotated[str, typer.Option(help="topic prefix to publish under; never the live topics")] = "replay.",
    speed: Annotated[float, typer.Option(help="recorded time / wall time; 0 = as fast as possible")] = 0.0,
    preset: Annotated[str, typer.Option(help="export format: jsonl, generic-csv or x-api-v2")] = "jsonl",
    mapping: Annotated[str, typer.Option(help="field mapping over the preset's, e.g. text=full_text")] = "",
    timezone: Annotated[str, typer.Option(help="zone of timestamps written without an offset")] = "UTC",
    brands: Annotated[Path | None, typer.Option(exists=True, help="brands.toml (default: the built-in one)")] = None,
) -> None:
    """Publish a recorded stream into a namespace with its timing; run the services with KAFKA_TOPIC_PREFIX on it."""
    from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE
    from crisiswatch.replay import PRESETS, mapping_for, run_replay

    if not namespace:
        raise typer.BadParameter("a replay needs a namespace (e.g. replay.): it never writes to the live topics")
    try:
        field_mapping = mapping_for(preset, mapping, timezone)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    chosen = PRESETS[preset]
    counts = run_replay(path, namespace, speed, chosen, field_mapping, brands or DEFAULT_BRANDS_FILE)
    typer.echo(" · ".join(f"{outcome} {count}" for outcome, count in counts.items()))


@app.command("eval-detector")
def eval_detector(
    nab: Annotated[Path, typer.Option(help="folder with realTweets/ and realTweets_windows.json")] = Path(
        "../shared/data/nab"
    ),
    streams: Annotated[Path, typer.Option(help="folder with the real recorded streams (Comcast, Apple)")] = Path(
        "../shared/data/streams"
    ),
    settings: Annotated[
        Path | None, typer.Option(help="a backtest settings file (TOML) whose detector settings to start from")
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="a small grid and a short synthetic suite (checks the machinery)")
    ] = False,
) -> None:
    """Choose the detector's settings leaving one stream out; print every fold, the worst beside the mean."""
    from statistics import median

    from rich.console import Console
    from rich.table import Table

    from crisiswatch.analysis.compare import load_settings
    from crisiswatch.analysis.evaluate import NAB_ANCHORS
    from crisiswatch.analysis.synthetic import suite_tables
    from crisiswatch.analysis.validation import (
        GRID,
        QUICK_GRID,
        grid_points,
        nab_pooled,
        point_words,
        spreads_across_streams,
        validate,
    )

    if not (nab / "realTweets_windows.json").is_file():
        raise typer.BadParameter(f"{nab} does not hold realTweets_windows.json")
    try:
        config = load_settings(settings).config() if settings else DetectorConfig()
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    grid = QUICK_GRID if quick else GRID
    console = Console()
    validated = validate(nab, streams, config, grid, quick=quick)
    folds = Table(
        "held-out fold", "settings chosen on the other folds", "score", "whole / young", "NAB low-FP", "what happened",
        title=f"Leave one stream out: {len(validated.held_out)} folds, {len(grid_points(grid))} settings tried",
    )  # fmt: skip
    for fold, result in validated.held_out.items():
        low_fp = f"{result.low_fp:.1f}" if result.low_fp is not None else ""
        parts = f"{result.whole:.1f} / {result.young:.1f}" if result.young is not None else ""
        chosen = point_words(validated.chosen[fold])
        folds.add_row(fold, chosen, f"{result.score:.1f}", parts, low_fp, result.detail)
    worst, worst_score = validated.worst
    standard, low_fp = nab_pooled(validated.held_out)
    folds.add_row("mean of the folds", "", f"{validated.mean:.1f}", "", "", "", style="bold")
    folds.add_row("worst fold", "", f"{worst_score:.1f}", "", "", worst, style="bold")
    nab_row = (
        "NAB series (mean)",
        "",
        f"{standard:.1f}",
        "",
        f"{low_fp:.1f}",
        "five realTweets series, whole, held out",
    )
    folds.add_row(*nab_row)
    console.print(folds)
    title = f"Shipped (best on all folds): {point_words(validated.shipped)}"
    shipped = Table("fold", "score", "whole / young", "NAB low-FP", "what happened", title=title)
    for fold, result in validated.in_sample.items():
        low_fp = f"{result.low_fp:.1f}" if result.low_fp is not None else ""
        parts = f"{result.whole:.1f} / {result.young:.1f}" if result.young is not None else ""
        shipped.add_row(fold, f"{result.score:.1f}", parts, low_fp, result.detail)
    console.print(shipped)
    anchors = Table("detector", "standard", "low-FP", "low-FN", title="NAB realTweets, published detectors (pooled)")
    for name, figures in NAB_ANCHORS.items():
        anchors.add_row(name, *(f"{v:.1f}" for v in figures))
    console.print(anchors)
    spreads = spreads_across_streams(nab, streams)
    known = [v for v in spreads.values() if v is not None]
    spread_table = Table(
        "stream", "day-to-day spread (6 h, log)", title="What the prior on a young brand's spread learns from"
    )
    for name, value in spreads.items():
        spread_table.add_row(name, "—" if value is None else f"{value:.2f}")
    spread_table.add_row("median (memory.prior_day_spread)", f"{median(known):.2f}" if known else "—", style="bold")
    console.print(spread_table)
    for suite_table in suite_tables(config, quick=quick):
        console.print(suite_table)


@app.command("eval-language")
def eval_language(
    data: Annotated[Path, typer.Option(help="folder with english/ and hebrew/ sentiment sets")] = Path(
        "../shared/data/sentiment"
    ),
    limit: Annotated[int, typer.Option(min=1, help="texts per language")] = 5000,
) -> None:
    """Score language identification on the labelled sentiment sets (share right, share undetermined, texts/s)."""
    from rich.console import Console
    from rich.table import Table

    from crisiswatch.analysis.languages import score_identification, shared_samples

    samples = shared_samples(data, limit)
    if not samples:
        raise typer.BadParameter(f"no sentiment set found under {data}")
    table = Table("language", "texts", "identified", "undetermined", "texts/s")
    for language, score in score_identification(samples).items():
        table.add_row(
            language,
            f"{score.texts:,}",
            f"{score.correct:.2%}",
            f"{score.undetermined:.2%}",
            f"{score.per_second:,.0f}",
        )
    Console().print(table)


@app.command("metrics-catalogue")
def metrics_catalogue(
    write: Annotated[Path | None, typer.Option(help="write the Markdown here instead of printing it")] = None,
) -> None:
    """Print (or write) the catalogue of every Prometheus metric the services export."""
    from crisiswatch.metrics_catalogue import render_markdown

    text = render_markdown()
    if write is None:
        typer.echo(text, nl=False)
    else:
        write.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {write}")


def main() -> None:
    """Console entry point."""
    app()
