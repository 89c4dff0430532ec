"""``make bench-alerter``: the alerter service draining a pre-filled ``mentions.scored`` on the embedded broker.

For each workload it starts the broker, fills ``mentions.scored`` with
scored mentions (keyed by brand, in event-time order), starts ``crisiswatch
alerter run`` as its own process and reads its ``/metrics`` until every
mention is accounted for. It reports:

- mentions/s: mentions handled (counted, duplicate, late or rejected) over the
  time from the first one handled to the last, so process start-up and the
  group join are not counted;
- changelog bytes per mention: keys and values of every record in the
  alerter's table changelogs after the drain, over the mentions;
- CPU µs per mention: the alerter process's CPU time over the same span
  (steadier than the rate when other work shares the machine);
- peak RSS of the alerter process (``VmHWM``);
- partition assignments: 1 means the consumer group never rebalanced;
- the faust floor: a faust agent that only counts the same records, batched
  the same way (:mod:`benchmarks.faust_floor`): the most any faust agent
  drains on this machine, before the alerter does anything.

The workloads are the three the alerter must hold up under: one brand in a
viral storm (5,000 mentions a minute), 1,000 brands at 10 a minute, and
10,000 brands at 1 a minute. Traffic only goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from crisiswatch.alerter.consumer import MAX_FETCH_BYTES
from crisiswatch.alerter.settings import AlerterSettings
from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics

APP_ID = "bench-alerter"
DRAIN_TIMEOUT_S = 300.0
ALERTER_KAFKA_TIMEOUTS = {
    "KAFKA_SESSION_TIMEOUT_MS": "30000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "3000",
    "KAFKA_MAX_POLL_INTERVAL_MS": "300000",
    "KAFKA_REQUEST_TIMEOUT_MS": "30000",
}
"""The group timeouts of the production manifests (deploy/k8s/base/kustomization.yaml). With the old local
defaults (6 s session, 10 s poll interval) a worker draining 10,000 brands fell out of its group on the embedded
broker and, before the rejoin fix (docs/reliability.md), stalled; the local defaults now drain it too
(tests/pipeline/test_group_faults.py)."""
POLL_S = 0.25


@dataclass(frozen=True)
class Workload:
    """How many brands, how many mentions each a minute, for how many minutes of event time."""

    name: str
    brands: int
    per_minute: int
    minutes: int

    @property
    def mentions(self) -> int:
        """Mentions in the workload."""
        return self.brands * self.per_minute * self.minutes


WORKLOADS = (
    Workload("one hot brand, 5,000/min", 1, 5_000, 12),
    Workload("1,000 brands, 10/min", 1_000, 10, 6),
    Workload("10,000 brands, 1/min", 10_000, 1, 6),
)


@dataclass(frozen=True)
class Result:
    """What one workload measured."""

    workload: Workload
    mentions_per_s: float
    cpu_us_per_mention: float
    changelog_bytes_per_mention: float
    peak_rss_mib: float
    assignments: float
    seconds: float
    floor_per_s: float


def scored_records(workload: Workload, start: datetime) -> list[tuple[bytes, bytes]]:
    """Keyed, JSON-encoded scored mentions of the workload in event-time order; every fifth one negative."""
    records = []
    per_minute_total = workload.brands * workload.per_minute
    step = timedelta(minutes=1) / per_minute_total
    negative = {"negative": 0.91, "neutral": 0.06, "positive": 0.03}
    neutral = {"negative": 0.05, "neutral": 0.85, "positive": 0.10}
    for n in range(workload.mentions):
        brand = f"brand-{n % workload.brands:05d}"
        is_negative = n % 5 == 0
        mention = {
            "id": f"bench-{n:09d}",
            "source": "bench",
            "brand": brand,
            "brand_name": brand,
            "text": f"{brand} checkout fails again" if is_negative else f"{brand} delivered on time",
            "created_at": (start + step * n).isoformat(),
            "author_handle": f"user{n % 977}",
            "author_followers": 100 + n % 5_000,
            "label": "negative" if is_negative else "neutral",
            "scores": negative if is_negative else neutral,
            "model": "bench",
        }
        records.append((brand.encode(), json.dumps(mention).encode()))
    return records


def fill(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Produce every record and wait until the broker has them all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=300)
    producer.close()


def handled(port: int) -> tuple[float, float]:
    """Mentions the alerter has handled (any outcome) and partition assignments, from its /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0.0, 0.0
    mentions = assignments = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "crisiswatch_alerter_mentions_total":
                mentions += sample.value
            elif sample.name == "crisiswatch_alerter_partition_assignments_total":
                assignments += sample.value
    return mentions, assignments


def changelog_bytes(bootstrap: str, prefix: str) -> int:
    """Bytes of keys and values in every changelog topic of the alerter's tables."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3_000)
    try:
        topics = [t for t in consumer.topics() if t.startswith(f"{prefix}{APP_ID}") and t.endswith("-changelog")]
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        if not partitions:
            return 0
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        total = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1_000, max_records=10_000).values():
                total += sum(len(r.key or b"") + len(r.value or b"") for r in batch)
        return total
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def faust_floor(bootstrap: str, topic: str, expect: int, batch: int, fetch_bytes: int) -> float:
    """Records/s of a faust agent that only counts, on the same topic (see :mod:`benchmarks.faust_floor`)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.faust_floor",
            f"--bootstrap={bootstrap}",
            f"--topic={topic}",
            f"--expect={expect}",
            f"--batch={batch}",
            f"--fetch-bytes={fetch_bytes}",
        ],
        capture_output=True,
        text=True,
        timeout=DRAIN_TIMEOUT_S,
        check=False,
    )
    found = re.search(r"records/s ([0-9.]+)", done.stdout)
    return float(found.group(1)) if found else float("nan")


def run_workload(
    workload: Workload,
    broker: EmbeddedBroker,
    partitions: int,
    workdir: Path,
    console: Console,
    floor: bool,
    floor_fetch_bytes: int,
    group_timeouts: dict[str, str] = ALERTER_KAFKA_TIMEOUTS,
) -> Result:
    """Fill, start the alerter, wait for the drain, measure."""
    prefix = f"bench{workload.brands}x{workload.per_minute}."
    topics = Topics(prefix)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=workload.minutes + 5)
    console.print(f"[bold]{workload.name}[/]: {workload.mentions:,} mentions, filling {topics.scored} …")
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix)
    ensure_topics(kafka, topics.all(), partitions)
    fill(broker.bootstrap_servers, topics.scored, scored_records(workload, start))
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": prefix,
        "ALERTER_APP_ID": APP_ID,
        "ALERTER_METRICS_PORT": str(port),
        "ALERTER_DATA_DIR": str(workdir / f"{prefix}state"),
        "ALERTER_ALERTS_FILE": str(workdir / f"{prefix}alerts.jsonl"),
        "ALERTER_LOG_LEVEL": "WARNING",
        **group_timeouts,
    }
    log = (workdir / f"{prefix}alerter.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "crisiswatch.alerter", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    console.print(f"  alerter pid {process.pid}")
    try:
        first_at = first_count = None
        first_cpu = 0.0
        count = assignments = 0.0
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while count < workload.mentions:
            if time.monotonic() > deadline or process.poll() is not None:
                kept = Path(tempfile.gettempdir()) / f"{prefix}alerter.log"
                kept.write_bytes(Path(log.name).read_bytes())
                tail = kept.read_text(errors="replace").splitlines()[-30:]
                raise RuntimeError(
                    f"the alerter handled {count:,.0f} of {workload.mentions:,} (log: {kept}):\n" + "\n".join(tail)
                )
            time.sleep(POLL_S)
            count, assignments = handled(port)
            if first_at is None and count > 0:
                first_at, first_count, first_cpu = time.monotonic(), count, cpu_seconds(process.pid)
        elapsed = time.monotonic() - (first_at or time.monotonic())
        rate = (count - (first_count or 0)) / elapsed if elapsed > 0 else float("nan")
        rss = peak_rss_mib(process.pid)
        cpu_per_mention = (cpu_seconds(process.pid) - first_cpu) / max(1.0, count - (first_count or 0))
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    size = changelog_bytes(broker.bootstrap_servers, prefix)
    floor_rate = (
        faust_floor(
            broker.bootstrap_servers, topics.scored, workload.mentions, AlerterSettings().batch_max, floor_fetch_bytes
        )
        if floor
        else float("nan")
    )
    return Result(
        workload, rate, 1e6 * cpu_per_mention, size / workload.mentions, rss, assignments, elapsed, floor_rate
    )


def main(
    only: Annotated[
        list[int] | None, typer.Option("--workload", help="1, 2 or 3 (repeatable); default: all three")
    ] = None,
    scale: Annotated[float, typer.Option(help="multiply each workload's minutes of traffic")] = 1.0,
    partitions: Annotated[int, typer.Option(help="partitions of the alerter's source topics")] = 4,
    floor: Annotated[bool, typer.Option(help="also drain each topic with a faust agent that only counts")] = True,
    local_group_timeouts: Annotated[
        bool,
        typer.Option(help="the local KAFKA_* group defaults (or the environment's) instead of the manifests'"),
    ] = False,
    floor_fetch_mib: Annotated[
        float, typer.Option(help="the floor agent's fetch size per partition (1 = faust's default)")
    ] = MAX_FETCH_BYTES / 2**20,
) -> None:
    """Measure the alerter service on the embedded broker for each workload."""
    console = Console()
    chosen = [w for i, w in enumerate(WORKLOADS, start=1) if not only or i in only]
    chosen = [Workload(w.name, w.brands, w.per_minute, max(3, round(w.minutes * scale))) for w in chosen]
    cpu = platform.processor() or platform.machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="crisiswatch-bench-alerter-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(port=free_port(), log_file=workdir / "broker.log") as broker:
            for workload in chosen:
                results.append(
                    run_workload(
                        workload,
                        broker,
                        partitions,
                        workdir,
                        console,
                        floor,
                        round(floor_fetch_mib * 2**20),
                        {} if local_group_timeouts else ALERTER_KAFKA_TIMEOUTS,
                    )
                )
    table = Table(
        title=f"crisiswatch alerter on the embedded broker ({partitions} partitions; {os.cpu_count()} cores, {cpu})"
    )
    columns = (
        "workload",
        "mentions",
        "mentions/s",
        "CPU µs/mention",
        "changelog B/mention",
        "peak RSS MiB",
        "assignments",
        "faust floor/s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "workload" else "right")
    for r in results:
        table.add_row(
            r.workload.name,
            f"{r.workload.mentions:,}",
            f"{r.mentions_per_s:,.0f}",
            f"{r.cpu_us_per_mention:,.0f}",
            f"{r.changelog_bytes_per_mention:,.1f}",
            f"{r.peak_rss_mib:,.0f}",
            f"{r.assignments:.0f}",
            f"{r.floor_per_s:,.0f}",
        )
    console.print(table)
    console.print("assignments: 1 = the consumer group never rebalanced during the run")
    console.print("faust floor: a faust agent that only counts the same records, batched alike")


if __name__ == "__main__":
    typer.run(main)
