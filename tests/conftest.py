"""Shared fixtures: a real broker for the session, a Slack stub, and running services."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from crisiswatch.contracts.schemas import ScoredMention, SentimentScores
from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics

from .slack_stub import SlackStub

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(port=free_port(), partitions=2, log_file=log) as running:
        yield running


def read_topic(bootstrap_servers: str, topic: str, at_least: int = 0, timeout: float = 60) -> list[bytes]:
    """Every value on ``topic`` from the start: until ``at_least`` arrived, or until it stays quiet for 3 s."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = [r.value for records in consumer.poll(timeout_ms=500).values() for r in records]
        values.extend(batch)
        if batch:
            quiet_since = time.monotonic()
        if (at_least and len(values) >= at_least) or (not at_least and time.monotonic() - quiet_since > 3):
            break
    consumer.close()
    return values


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStub]:
    stub = SlackStub().start()
    yield stub
    stub.stop()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose label set contains ``labels`` (e.g. 'outcome="counted"')."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            match = re.match(rf"{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
            if match and labels in (match.group(1) or ""):
                total += float(match.group(2))
    return total


@dataclass
class Pipeline:
    """The three services started as real processes against the session broker."""

    broker: EmbeddedBroker
    workdir: Path
    topics: Topics
    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        module = f"crisiswatch.{name.split('-')[0]}"
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        self.processes[name] = process
        return process

    def run_listener(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [sys.executable, "-m", "crisiswatch.listener", *args],
            env=self.env,
            cwd=self.workdir,
            check=True,
            timeout=timeout,
            capture_output=True,
        )

    def read(self, topic: str, at_least: int = 0, timeout: float = 60) -> list[bytes]:
        return read_topic(self.broker.bootstrap_servers, topic, at_least, timeout)

    def metrics(self, service: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[service]}/metrics", timeout=5) as response:
            return response.read().decode()

    def wait_for_metric(self, service: str, name: str, labels: str, at_least: float, timeout: float = 240) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            for proc_name, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.workdir / f"{proc_name}.log").read_text()[-3000:]
                    raise AssertionError(f"{proc_name} exited with {process.returncode}:\n{log}")
            try:
                value = metric_value(self.metrics(service), name, labels)
            except OSError:
                value = 0.0
            if value >= at_least:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{service} {name}{{{labels}}} reached only {value}, wanted {at_least}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scored_traffic(
    brand: str, start: datetime, minutes: int, per_minute: int, negative_every: int, tag: str
) -> list[ScoredMention]:
    """Already-scored mentions of ``brand``, ``per_minute`` a minute from ``start``; every n-th one negative."""
    mentions = []
    for minute in range(minutes):
        for i in range(per_minute):
            negative = (minute * per_minute + i) % negative_every == 0
            label = "negative" if negative else "neutral"
            scores = (
                SentimentScores(negative=0.9, neutral=0.05, positive=0.05)
                if negative
                else SentimentScores(negative=0.05, neutral=0.9, positive=0.05)
            )
            text = f"{brand} app crashed again, card payments fail" if negative else f"using {brand} today"
            mentions.append(
                ScoredMention(
                    id=f"{tag}-{minute}-{i}",
                    source="test",
                    brand=brand,
                    text=text,
                    author_handle=f"user{i}",
                    author_followers=100 * (i + 1),
                    created_at=start + timedelta(minutes=minute, seconds=60 * i / per_minute),
                    label=label,
                    scores=scores,
                    model="test-labels",
                )
            )
    return mentions


def storm_then_calm(brand: str, calm_minutes: int = 150, storm_minutes: int = 10) -> tuple[list, list]:
    """A calm brand long enough to warm the detector up, then a storm of complaints ending now; and the calm after.

    Returns (calm + storm, quiet afterwards): the first opens an incident, the
    second lets it resolve.
    """
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    storm_start = now - timedelta(minutes=storm_minutes)
    calm_start = storm_start - timedelta(minutes=calm_minutes)
    before = scored_traffic(brand, calm_start, calm_minutes, 3, 5, "calm")
    storm = scored_traffic(brand, storm_start, storm_minutes, 20, 1, "storm")
    after = scored_traffic(brand, now, 45, 3, 5, "after")
    return [*before, *storm], after


def produce(pipeline: Pipeline, topic: str, mentions: list[ScoredMention]) -> None:
    """Write mentions to ``topic`` keyed by brand, as the services do."""
    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    for mention in mentions:
        producer.send(topic, key=mention.brand.encode(), value=mention.to_bytes())
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def pipeline_factory(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started: list[Pipeline] = []

    session_broker = broker

    def make(extra_env: dict[str, str] | None = None, broker: EmbeddedBroker = session_broker) -> Pipeline:
        """Services for one test in their own topic namespace (on ``broker``, the session's by default)."""
        tmp_path = tmp_path_factory.mktemp("pipeline")
        prefix = f"t{uuid.uuid4().hex[:8]}."
        topics = Topics(prefix)
        ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), topics.all(), partitions=2)
        ports = {name: free_port() for name in ("listener", "classifier", "alerter")}
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "KAFKA_", "ALERTER_"))}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_TOPIC_PREFIX": prefix,
                "LISTENER_METRICS_PORT": str(ports["listener"]),
                "CLASSIFIER_METRICS_PORT": str(ports["classifier"]),
                "ALERTER_METRICS_PORT": str(ports["alerter"]),
                "KAFKA_TOPIC_PARTITIONS": "2",
                "ALERTER_LAG_REFRESH_SECONDS": "2",
                "ALERTER_DATA_DIR": str(tmp_path / "alerter-state"),
                "ALERTER_ALERTS_FILE": str(tmp_path / "alerts.jsonl"),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                **(extra_env or {}),
            }
        )
        pipeline = Pipeline(broker, tmp_path, topics, env, ports)
        started.append(pipeline)
        return pipeline

    yield make
    for pipeline in started:
        pipeline.stop()
