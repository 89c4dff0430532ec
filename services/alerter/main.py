"""Alerter entry point: ``crisiswatch alerter run`` (or ``python -m crisiswatch.alerter``)."""

from __future__ import annotations

import logging

import faust
import typer

from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.health import BrokerWatch, HealthSettings
from crisiswatch.runtime.kafka import KafkaSettings, MetadataQuestion, ensure_topics, partition_count
from crisiswatch.runtime.logs import configure_logging
from crisiswatch.runtime.metrics import serve_metrics

from .access import PressGate
from .alert_themes import warm_encoder
from .app import Interactivity, build_app
from .delivery import bot_client, make_notifier
from .interactivity import Publish, Reject, SlackInteractivity
from .message import MessageComposer
from .replies import Drafter, load_templates
from .reply_refinement import LlmDrafter
from .settings import AlerterSettings, LlmSettings, SlackSettings

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
    probes = HealthSettings()
    health = probes.health()
    serve_metrics(settings.metrics_port, "alerter", health=health)
    try:
        templates = load_templates(settings.templates_file)
    except ValueError as error:
        log.error("reply templates are invalid", extra={"error": str(error)})
        raise typer.Exit(2) from None
    warm_encoder()  # in the background: the first alert's themes need not wait for the model load
    client = None
    interactivity: Interactivity | None = None
    if slack.mode == "bot" and slack.bot_token:
        client = bot_client(slack.bot_token.get_secret_value(), slack.api_url)
    if slack.interactive and client is not None and slack.app_token is not None:
        app_token, web_client = slack.app_token.get_secret_value(), client
        gate = PressGate.from_settings(slack, client)

        def interactivity(publish: Publish, reject: Reject) -> SlackInteractivity:
            return SlackInteractivity(app_token, web_client, publish, reject, gate)

    llm = LlmSettings()
    drafter: Drafter | None = LlmDrafter(llm, templates) if llm.url else None
    notifier = make_notifier(slack, settings.alerts_file, client)
    topics = Topics(kafka.topic_prefix)
    ensure_topics(kafka, topics.all(), kafka.topic_partitions)
    partitions = partition_count(kafka, topics.scored)
    actions_partitions = partition_count(kafka, topics.actions)
    if actions_partitions != partitions:
        log.error(
            "crisis.actions must have as many partitions as mentions.scored",
            extra={"scored": partitions, "actions": actions_partitions},
        )
        raise typer.Exit(2)
    app = build_app(settings, kafka, notifier, partitions, interactivity, health, MessageComposer(templates, drafter))
    BrokerWatch(health, MetadataQuestion(kafka, "crisiswatch-alerter-health"), probes.broker_check_s).start()
    log.info(
        "alerter starting",
        extra={
            "delivery": slack.mode,
            "buttons": slack.interactive,
            "team": slack.team_id,
            "reply_refinement": llm.url is not None,
            "brokers": kafka.bootstrap_servers,
            "partitions": partitions,
        },
    )
    worker = faust.Worker(app, loglevel="WARN", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def main() -> None:
    """Console entry point."""
    cli()
