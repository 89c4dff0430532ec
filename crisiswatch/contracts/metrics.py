"""Prometheus helpers every service uses: the /metrics server, build info, lag and latency."""

from __future__ import annotations

import platform
from collections.abc import Mapping

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, Info, start_http_server

import crisiswatch

END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
BATCH_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def serve_metrics(port: int, service: str, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Expose ``registry`` on ``http://host:port/metrics`` and publish build info; port 0 disables it."""
    Info("crisiswatch_build", "Version and runtime of this process", ["service"], registry=registry).labels(
        service=service
    ).info({"version": crisiswatch.__version__, "python": platform.python_version()})
    if port:
        start_http_server(port, addr=host, registry=registry)


class ConsumerLag:
    """``crisiswatch_consumer_lag`` per topic partition, refreshed from the consumer's own view."""

    def __init__(self, service: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.service = service
        self.gauge = Gauge(
            "crisiswatch_consumer_lag",
            "Records not yet consumed, by topic and partition",
            ["service", "topic", "partition"],
            registry=registry,
        )

    def refresh(self, consumer: KafkaConsumer) -> None:
        """Read end offsets for the assigned partitions and set the gauge (best effort)."""
        assigned = consumer.assignment()
        if not assigned:
            return
        ends: Mapping[TopicPartition, int] = consumer.end_offsets(list(assigned))
        for partition, end in ends.items():
            position = consumer.position(partition)
            self.gauge.labels(self.service, partition.topic, str(partition.partition)).set(max(0, end - position))


def end_to_end_histogram(stage: str, registry: CollectorRegistry = REGISTRY) -> Histogram:
    """Seconds from a mention's ``created_at`` to this stage, for the SRE latency panel."""
    return Histogram(
        f"crisiswatch_{stage}_end_to_end_seconds",
        f"Seconds from the mention's creation to {stage}",
        buckets=END_TO_END_BUCKETS,
        registry=registry,
    )
