"""Classifier entry point: ``crisiswatch classifier run`` (or ``python -m crisiswatch.classifier``).

The model tools (``crisiswatch classify``, ``crisiswatch model``) live in
:mod:`crisiswatch.modeling.cli`; this is only the stream service.
"""

from __future__ import annotations

import logging

import typer

from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.health import BrokerWatch, HealthSettings
from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, MetadataQuestion, ensure_topics, make_consumer
from crisiswatch.runtime.logs import configure_logging
from crisiswatch.runtime.metrics import ConsumerLag, serve_metrics
from crisiswatch.runtime.stop_signal import StopSignal
from crisiswatch.sentiment.batching import BatchPolicy
from crisiswatch.sentiment.loading import load_models
from crisiswatch.sentiment.routing import ANY_LANGUAGE

from . import metrics
from .settings import ClassifierSettings

log = logging.getLogger("crisiswatch.classifier")
cli = typer.Typer(help="Score mention sentiment: the stream service.", no_args_is_help=True)


@cli.callback()
def service() -> None:
    """Run ``run`` to start the service."""


@cli.command()
def run() -> None:
    """Consume ``mentions.raw``, score, produce ``mentions.scored``; stops cleanly on SIGTERM."""
    settings = ClassifierSettings()
    kafka = KafkaSettings()
    configure_logging(settings.log_level)
    stop = StopSignal()
    models = load_models(settings)
    policy = {"max_batch_size": str(settings.max_batch_size), "lookahead_batches": str(settings.lookahead_batches)}
    for language, scorer in models.by_language.items():
        metrics.MODEL.labels(language).info(scorer.describe() | policy)
    if models.fallback:
        metrics.MODEL.labels(ANY_LANGUAGE).info(models.fallback.describe() | policy)
    probes = HealthSettings()
    health = probes.health()
    serve_metrics(settings.metrics_port, "classifier", health=health)
    topics = Topics(kafka.topic_prefix)
    ensure_topics(kafka, topics.all(), kafka.topic_partitions)
    from .service import ClassifierService

    service = ClassifierService(
        models,
        make_consumer(kafka, topics.group(settings.group_id), [topics.raw], "crisiswatch-classifier"),
        AckedProducer.for_settings(
            kafka, "crisiswatch-classifier", on_failure=lambda _topic, _count: metrics.ERRORS.labels("produce").inc()
        ),
        topics,
        BatchPolicy(settings.max_batch_size, settings.max_wait_ms / 1000, settings.lookahead_batches),
        ConsumerLag("classifier"),
        health,
    )
    BrokerWatch(health, MetadataQuestion(kafka, "crisiswatch-classifier-health"), probes.broker_check_s).start()
    log.info("classifier consuming", extra={"topic": topics.raw, "group": topics.group(settings.group_id)})
    service.run(stop)
    log.info("classifier stopped")


def main() -> None:
    """Console entry point for ``python -m crisiswatch.classifier``."""
    cli()
