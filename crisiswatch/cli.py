"""The ``crisiswatch`` command: every service, the embedded broker, the demo and the model tools."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from crisiswatch.alerter.detector import DetectorConfig, Sensitivity
from crisiswatch.alerter.main import cli as alerter_cli
from crisiswatch.contracts.logs import configure_logging
from crisiswatch.contracts.topics import Topics
from crisiswatch.listener.main import cli as listener_cli

app = typer.Typer(help="crisiswatch: real-time social-listening crisis detection.", no_args_is_help=True)
app.add_typer(listener_cli, name="listener")
app.add_typer(alerter_cli, name="alerter")

try:
    from crisiswatch.classifier.main import classify, model_cli
    from crisiswatch.classifier.main import cli as classifier_cli
except ImportError as missing:  # the listener and alerter install without the model stack
    _missing_model_stack = str(missing)

    @app.command(
        "classifier", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
    )
    def classifier_unavailable() -> None:
        """Unavailable: install the model extra (pip install 'crisiswatch[model]')."""
        raise typer.BadParameter(f"the classifier needs the model extra: {_missing_model_stack}")
else:
    app.add_typer(classifier_cli, name="classifier")
    app.add_typer(model_cli, name="model")
    app.command("classify")(classify)


@app.command()
def broker(
    host: str = "127.0.0.1",
    port: int = 9092,
    partitions: Annotated[int, typer.Option(min=1, help="partitions per topic")] = 1,
    topic_prefix: str = "",
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) and create the topics; Ctrl-C stops it."""
    from crisiswatch.broker import EmbeddedBroker

    configure_logging("INFO")
    log = logging.getLogger("crisiswatch.broker")
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
) -> None:
    """Run broker, listener, classifier and alerter on the built-in scenario and show the alert."""
    from crisiswatch.demo import run_demo

    raise typer.Exit(run_demo(speed=speed, port=port))


@app.command()
def backtest(
    counts: Annotated[
        Path, typer.Option("--counts", exists=True, dir_okay=False, help="NAB-format timestamp,value series")
    ],
    output: Annotated[Path, typer.Option(help="where to write timestamp,value,anomaly_score,alert")],
    sensitivity: Annotated[Sensitivity, typer.Option(help="fewer, balanced or more alerts")] = Sensitivity.BALANCED,
) -> None:
    """Run the live detector offline over a count series and mark where it would alert."""
    from crisiswatch.analysis.counts import detect, read_series, write_points

    points = list(detect(read_series(counts), DetectorConfig(sensitivity=sensitivity)))
    write_points(points, output)
    typer.echo(f"{len(points)} buckets, {sum(p.alert for p in points)} alerts -> {output}")


@app.command("eval-detector")
def eval_detector(
    nab: Annotated[Path, typer.Option(help="folder with realTweets/ and realTweets_windows.json")] = Path(
        "../shared/data/nab"
    ),
) -> None:
    """Score the detector with the NAB rules on the shared series (beside NAB anchors) and on the synthetic suite."""
    from rich.console import Console
    from rich.table import Table

    from crisiswatch.analysis.evaluate import NAB_ANCHORS, evaluate_nab

    if not (nab / "realTweets_windows.json").is_file():
        raise typer.BadParameter(f"{nab} does not hold realTweets_windows.json")
    result = evaluate_nab(nab, DetectorConfig())
    table = Table("detector", "standard", "low-FP", "low-FN", title="NAB realTweets (5 series, 14 windows)")
    table.add_row("crisiswatch", *(f"{result.scores[p]:.1f}" for p in ("standard", "low-FP", "low-FN")), style="bold")
    for name, figures in NAB_ANCHORS.items():
        table.add_row(name, *(f"{v:.1f}" for v in figures))
    console = Console()
    console.print(table)
    detail = Table("series", "windows", "detected", "false positives", title="crisiswatch per series (standard)")
    for series, row in result.detail.items():
        detail.add_row(series, *(str(v) for v in row.values()))
    console.print(detail)

    from crisiswatch.analysis.synthetic import run_suite

    summary = run_suite(DetectorConfig())
    cases = Table("case", "detected", "delay", "false incidents", "calm brand-weeks", title="synthetic crisis suite")
    for case in summary.results:
        delay = f"{case.delay.total_seconds() / 60:.0f} min" if case.delay is not None else "—"
        detected = "yes" if case.detected else ("no" if case.case.scenario.crises else "(no crisis)")
        cases.add_row(case.case.name, detected, delay, str(case.false_incidents), f"{case.calm_brand_weeks:.2f}")
    console.print(cases)
    median = summary.median_delay_minutes_at_1_per_minute
    console.print(
        f"recall {100 * summary.recall:.0f}% · {summary.false_incidents_per_brand_week:.2f} false incidents per calm "
        f"brand-week · median delay {median if median is not None else '—'} min for brands with >= 1 negative/min"
    )


def main() -> None:
    """Console entry point."""
    app()
