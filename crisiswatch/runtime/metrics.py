"""Prometheus helpers every service uses: the /metrics server, build info, lag, latency, bounded labels."""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, Info, make_wsgi_app

import crisiswatch

from .health import Health, ReadProgress

END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
BATCH_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OVERFLOW_LABEL = "_other"

BUILD_INFO = Info("crisiswatch_build", "Version and runtime of this process", ["service"])
CONSUMER_LAG = Gauge(
    "crisiswatch_consumer_lag",
    "Records not yet consumed, by consuming service, topic and partition",
    ["service", "topic", "partition"],
)


class _QuietHandler(WSGIRequestHandler):
    """Probes and scrapes arrive every few seconds: they are not worth a log line each."""

    def log_message(self, format: str, *args: object) -> None:
        return


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics(
    port: int,
    service: str,
    host: str = "0.0.0.0",
    registry: CollectorRegistry = REGISTRY,
    health: Health | None = None,
) -> None:
    """Expose ``registry`` on ``http://host:port/metrics`` and publish build info; port 0 disables it.

    With ``health``, ``/livez`` and ``/readyz`` answer 200 or 503 with the
    reason (see :mod:`crisiswatch.runtime.health`) on the same port.
    """
    BUILD_INFO.labels(service=service).info({"version": crisiswatch.__version__, "python": platform.python_version()})
    if not port:
        return
    metrics_app = make_wsgi_app(registry)
    probes = {"/livez": health.liveness, "/readyz": health.readiness} if health else {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics_app(environ, start_response)
        ok, why = probe()
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{why}\n".encode()]

    server = make_server(host, port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"{service}-metrics", daemon=True).start()


def set_consumer_lag(
    service: str, ends: Mapping[tuple[str, int], int], positions: Mapping[tuple[str, int], int]
) -> None:
    """Set ``crisiswatch_consumer_lag`` for every (topic, partition) with both an end offset and a position."""
    for topic_partition, end in ends.items():
        if topic_partition in positions:
            topic, partition = topic_partition
            CONSUMER_LAG.labels(service, topic, str(partition)).set(max(0, end - positions[topic_partition]))


class ConsumerLag:
    """Lag of a kafka-python group consumer, from the high-water marks its own fetches brought back.

    Partitions not fetched from yet fall back to a ListOffsets request.
    """

    def __init__(self, service: str) -> None:
        self.service = service

    def refresh(self, consumer: KafkaConsumer) -> ReadProgress:
        """Set the gauge for every assigned partition (best effort); what the consumer holds and has read."""
        assigned = consumer.assignment()
        if not assigned:
            return ReadProgress(0, 0, 0)
        ends: dict[TopicPartition, int] = {}
        for partition in assigned:
            highwater = consumer.highwater(partition)
            if highwater is not None:
                ends[partition] = highwater
        unknown = [partition for partition in assigned if partition not in ends]
        if unknown:
            ends.update(consumer.end_offsets(unknown))
        positions = {partition: consumer.position(partition) for partition in ends}
        set_consumer_lag(self.service, ends, positions)
        lag = sum(max(0, end - positions[partition]) for partition, end in ends.items())
        return ReadProgress(len(assigned), lag, sum(positions.values()))


class BoundedLabel:
    """Keeps a label's cardinality bounded: the first ``limit`` distinct values pass, later ones read ``_other``.

    Per-brand gauges must not grow without bound when a producer writes
    brands nobody configured; an SRE sees the overflow as one ``_other`` series.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        """The label to use for ``value``."""
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OVERFLOW_LABEL


def end_to_end_histogram(stage: str, registry: CollectorRegistry = REGISTRY) -> Histogram:
    """Seconds from a mention's ``created_at`` to this stage, for the SRE latency panel."""
    return Histogram(
        f"crisiswatch_{stage}_end_to_end_seconds",
        f"Seconds from the mention's creation to {stage}",
        buckets=END_TO_END_BUCKETS,
        registry=registry,
    )
