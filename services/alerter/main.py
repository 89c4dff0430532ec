"""Alerter entry point: ``crisiswatch alerter run`` (or ``python -m crisiswatch.alerter``)."""

from __future__ import annotations

import logging

import faust
import typer

from crisiswatch.contracts.kafka import KafkaSettings, ensure_topics, partition_count
from crisiswatch.contracts.logs import configure_logging
from crisiswatch.contracts.metrics import serve_metrics
from crisiswatch.contracts.topics import Topics

from .app import build_app
from .delivery import make_notifier
from .responses import load_templates
from .settings import AlerterSettings, SlackSettings

log = logging.getLogger("crisiswatch.alerter")
cli = typer.Typer(help="Detect crises in scored mentions and alert the service team.", no_args_is_help=True)


@cli.callback()
def service() -> None:
    """Run ``run`` to start the service."""


@cli.command()
def run() -> None:
    """Run the alerter worker until SIGTERM (state is restored from its changelog on start)."""
    settings = AlerterSettings()
    slack = SlackSettings()
    kafka = KafkaSettings()
    configure_logging(settings.log_level)
    serve_metrics(settings.metrics_port, "alerter")
    try:
        templates = load_templates(settings.templates_file)
    except ValueError as error:
        log.error("reply templates are invalid", extra={"error": str(error)})
        raise typer.Exit(2) from None
    notifier = make_notifier(slack, settings.alerts_file, templates)
    topics = Topics(kafka.topic_prefix)
    ensure_topics(kafka, topics.all(), kafka.topic_partitions)
    partitions = partition_count(kafka, topics.scored)
    app = build_app(settings, kafka, notifier, partitions)
    log.info(
        "alerter starting",
        extra={"delivery": slack.mode, "brokers": kafka.bootstrap_servers, "partitions": partitions},
    )
    worker = faust.Worker(app, loglevel="WARN", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def main() -> None:
    """Console entry point."""
    cli()
