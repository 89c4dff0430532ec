"""Shared fixtures: a real broker for the session, a Slack stub, and running services; hypothesis profiles.

The tests come in two tiers, one folder each: ``unit/`` runs in-process (pure
functions, components with local HTTP stubs) and ``pipeline/`` starts a real
broker or the services as processes. Every test under ``pipeline/`` carries
the ``pipeline`` marker, so ``-m "not pipeline"`` and the folder agree.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from crisiswatch.contracts.schemas import Incident, Mention
from crisiswatch.contracts.topics import Topics

from .factories import scored_traffic as scored_traffic  # still importable from here (tests/pipeline/test_seed.py)
from .factories import storm_then_calm as storm_then_calm

if TYPE_CHECKING:  # kafka, the broker and the Slack stub (aiohttp) load in the fixtures that use them, so the
    # pytest-xdist controller, which only schedules, does not import them before it starts the workers
    from crisiswatch.runtime.broker import EmbeddedBroker

    from .slack_stub import SlackStub

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T = TypeVar("T")

# Property tests run a few dozen examples by default (`make test-fast`) and every example they ask for under the
# `ci` profile: `make test`, HYPOTHESIS_PROFILE=ci, --hypothesis-profile=ci, or any run hypothesis itself sees is on
# a CI server. A test that wants more than 100 examples asks with `max_examples=examples(n)`.
_AUTO_PROFILE = "ci" if settings.get_current_profile_name() == "ci" else "dev"
settings.register_profile("dev", max_examples=50)
settings.register_profile(
    "ci", max_examples=100, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _AUTO_PROFILE))


PIPELINE_TIER = Path(__file__).resolve().parent / "pipeline"
THREAD_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker its share of the cores for torch, BLAS and OpenMP.

    Every worker's libraries would otherwise start a thread per core, so two
    workers on two cores run four busy-waiting pools against each other (the
    theme evaluation took five times the CPU). This runs before any test
    module imports numpy or torch, which read these variables when they load.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if "PYTEST_XDIST_WORKER" in os.environ and workers > 0:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for variable in THREAD_POOL_VARIABLES:
            os.environ.setdefault(variable, share)


MODEL_MODULES = frozenset(
    {
        "test_backtest_mentions.py",
        "test_classifier_units.py",
        "test_compose.py",
        "test_cross_validation.py",
        "test_model.py",
        "test_theme_encoders.py",
        "test_themes.py",
    }
)
"""Unit modules whose tests load torch and the shipped models (they import them inside the tests, not at the top)."""

ONE_WORKER_MODULES = frozenset({"test_detector_day_scale.py", "test_operations.py"})
"""Unit modules whose tests share a per-process cache (calm weeks learnt, overlays built): each runs on one worker."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` (``make test-fast``): the tests of :data:`MODEL_MODULES` are one group, run by one worker.

    Only that worker then pays for importing torch and loading the models
    (seconds each). Each of :data:`ONE_WORKER_MODULES` is a group of its own,
    so one worker builds its cache. xdist's own ``xdist_group`` mark still
    groups as well, where the pytest in use keeps the group xdist writes into
    the test id.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModelsOnOneWorker(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            if module in MODEL_MODULES:
                return "models"
            if module in ONE_WORKER_MODULES:
                return module
            return super()._split_scope(nodeid)

    return ModelsOnOneWorker(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of the pipeline tier ``pipeline``, whatever its module declares."""
    for item in items:
        if PIPELINE_TIER in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.pipeline)


def examples(full: int) -> int:
    """How many examples a property test asking for ``full`` runs: all under the ci profile, the profile's few else."""
    if settings.get_current_profile_name() == "ci":
        return full
    return min(full, settings().max_examples)


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60, every: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    from crisiswatch.runtime.broker import EmbeddedBroker, free_port

    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(port=free_port(), partitions=2, log_file=log) as running:
        yield running


def read_topic(bootstrap_servers: str, topic: str, at_least: int = 0, timeout: float = 60) -> list[bytes]:
    """Every value on ``topic`` from the start: until ``at_least`` arrived, or until it stays quiet for 3 s."""
    from kafka import KafkaConsumer

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


def topic_size(bootstrap_servers: str, topic: str) -> int:
    """How many records ``topic`` holds: the sum of its partitions' end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStub]:
    from .slack_stub import SlackStub

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
    python: str = sys.executable
    """The interpreter the services run under: this one, or one that has only the built wheel installed."""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        module = f"crisiswatch.{name.split('-')[0]}"
        process = subprocess.Popen(
            [self.python, "-m", module, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        self.processes[name] = process
        return process

    def run_listener(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [self.python, "-m", "crisiswatch.listener", *args],
            env=self.env,
            cwd=self.workdir,
            check=True,
            timeout=timeout,
            capture_output=True,
        )

    def read(self, topic: str, at_least: int = 0, timeout: float = 60) -> list[bytes]:
        return read_topic(self.broker.bootstrap_servers, topic, at_least, timeout)

    def size(self, topic: str) -> int:
        return topic_size(self.broker.bootstrap_servers, topic)

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


def produce(pipeline: Pipeline, topic: str, records: Iterable[Mention | Incident]) -> None:
    """Write mentions (raw or scored) or incident events to ``topic`` keyed by brand, as the services do."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    for record in records:
        producer.send(topic, key=record.brand.encode(), value=record.to_bytes())
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def pipeline_factory(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from crisiswatch.runtime.broker import free_port
    from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics

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
