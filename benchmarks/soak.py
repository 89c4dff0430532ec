"""``make soak``: a steady stream through all three services on the embedded broker, for a bounded time.

Starts the broker, the listener's HTTP ingest, the classifier and the alerter
as real processes on 127.0.0.1, posts mentions at ``--rate`` per second for
``--minutes``, then waits for the stream to drain. It reports throughput,
consumer lag over the run, p95 end-to-end latency (creation to the alerter),
each process's RSS after warm-up and at the end, and whether every mention was
counted exactly once (lost = sent - counted; a mention counted twice would
need the alerter's id dedup to fail, which the ``duplicate`` counter shows it
did not). Texts come from the demo scenario, with fresh ids and timestamps;
a small warm-up batch goes through first, so model loading and group joins
are not measured as latency.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import cycle
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crisiswatch.ingest.scenario import demo_scenario, generate
from crisiswatch.runtime.broker import EmbeddedBroker, free_port

TOKEN = "soak-ingest-token-of-32-characters"
SERVICES = ("listener", "classifier", "alerter")
SAMPLE_EVERY_S = 10.0
WARMUP_MENTIONS = 20


@dataclass
class Services:
    """The three services as processes, with their metrics ports."""

    workdir: Path
    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        """Start the listener's ingest, the classifier and the alerter."""
        for name, args in (("listener", ["serve"]), ("classifier", ["run"]), ("alerter", ["run"])):
            log = (self.workdir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"crisiswatch.{name}", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def metrics(self, name: str) -> dict[str, float]:
        """Every sample of the service's /metrics as ``name{labels}`` -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each service now."""
        rss = {}
        for name, process in self.processes.items():
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[name] = int(line.split()[1]) / 1024
        return rss

    def check_alive(self) -> None:
        """Raise with the log's tail if a service exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM every service and wait (kill after a minute)."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def total(samples: dict[str, float], name: str, label: str = "") -> float:
    """Sum of the samples of ``name`` whose labels contain ``label``."""
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and label in k)


def histogram_quantile(samples: dict[str, float], name: str, quantile: float) -> float:
    """The quantile of a Prometheus histogram from its cumulative buckets (linear within a bucket)."""
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), v) for k, v in samples.items() if k.startswith(f"{name}_bucket{{")
    )
    count = buckets[-1][1] if buckets else 0.0
    if count == 0:
        return float("nan")
    rank, lower_bound, lower_count = quantile * count, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower_bound
            share = (rank - lower_count) / max(cumulative - lower_count, 1e-9)
            return lower_bound + share * (upper - lower_bound)
        lower_bound, lower_count = upper, cumulative
    return lower_bound


def counted_by(services: Services) -> float:
    """Mentions the alerter has counted (each id once); 0 before its metrics answer."""
    try:
        return total(services.metrics("alerter"), "crisiswatch_alerter_mentions_total", 'outcome="counted"')
    except OSError:
        return 0.0


def post(url: str, batch: list[dict[str, object]]) -> int:
    """POST a batch to the ingest; the HTTP status (0 when nothing answered)."""
    request = urllib.request.Request(url, data=json.dumps(batch).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def main(
    minutes: Annotated[float, typer.Option(help="how long to send", min=0.1, max=60)] = 10.0,
    rate: Annotated[float, typer.Option(help="mentions per second", min=1, max=2000)] = 40.0,
    drain_timeout: Annotated[float, typer.Option(help="seconds to wait for the stream to drain")] = 300.0,
    output: Annotated[Path | None, typer.Option(help="also write the figures as JSON here")] = None,
) -> None:
    """Run the soak and print its figures (exit 1 if anything was lost or memory grew by more than 25%)."""
    console = Console()
    texts = cycle([record["text"] for record in generate(demo_scenario())])
    workdir = Path(tempfile.mkdtemp(prefix="crisiswatch-soak-"))
    ports = {name: free_port() for name in (*SERVICES, "ingest")}
    broker = EmbeddedBroker(port=free_port(), partitions=2, log_file=workdir / "broker.log").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KAFKA_", "ALERTER_", "LISTENER_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC_PARTITIONS": "2",
            "LISTENER_INGEST_PORT": str(ports["ingest"]),
            "LISTENER_INGEST_TOKEN": TOKEN,
            "LISTENER_RATE_LIMIT_PER_S": "0",
            "ALERTER_DATA_DIR": str(workdir / "alerter"),
            "ALERTER_ALERTS_FILE": str(workdir / "alerts.jsonl"),
            "ALERTER_LAG_REFRESH_SECONDS": "5",
            **{f"{name.upper()}_METRICS_PORT": str(ports[name]) for name in SERVICES},
        }
    )
    services = Services(workdir, env, ports)
    url = f"http://127.0.0.1:{ports['ingest']}/v1/mentions"
    sent, refused, lag_samples = 0, 0, []
    rss_start: dict[str, float] = {}
    try:
        services.start()
        deadline = time.monotonic() + 120
        while post(url, []) != 202:
            services.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the listener did not come up")
            time.sleep(1)
        warmup = [
            {"id": f"warmup-{i}", "text": next(texts), "brand": "acme-air", "created_at": datetime.now(UTC).isoformat()}
            for i in range(WARMUP_MENTIONS)
        ]
        post(url, warmup)
        while counted_by(services) < WARMUP_MENTIONS:
            services.check_alive()
            if time.monotonic() > deadline + 180:
                raise RuntimeError("the warm-up mentions did not reach the alerter")
            time.sleep(1)
        started = time.monotonic()
        end = started + 60 * minutes
        next_sample = started + SAMPLE_EVERY_S
        tick = 0.5
        brands = cycle(("acme-air", "nimbus-bank", "voltcell"))
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[lag]}"))
        with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("sending", total=60 * minutes, lag="")
            while (now := time.monotonic()) < end:
                due = int(rate * (now - started)) - sent - refused
                if due > 0:
                    now_iso = datetime.now(UTC).isoformat()
                    batch = [
                        {"id": f"soak-{sent + i}", "text": next(texts), "brand": next(brands), "created_at": now_iso}
                        for i in range(due)
                    ]
                    if post(url, batch) == 202:
                        sent += due
                    else:
                        refused += due
                if now >= next_sample:
                    services.check_alive()
                    lag = total(services.metrics("classifier"), "crisiswatch_consumer_lag")
                    lag_samples.append(lag)
                    if not rss_start and now - started >= 30:
                        rss_start = services.rss_mib()
                    next_sample += SAMPLE_EVERY_S
                    progress.update(task, lag=f"classifier lag {lag:.0f}")
                progress.update(task, completed=now - started, description=f"sent {sent:,}")
                time.sleep(tick)
        send_seconds = time.monotonic() - started
        rss_end = services.rss_mib()
        counted = 0.0
        drain_deadline = time.monotonic() + drain_timeout
        while time.monotonic() < drain_deadline:
            counted = counted_by(services) - WARMUP_MENTIONS
            if counted >= sent:
                break
            services.check_alive()
            time.sleep(2)
        drained = time.monotonic() - started
        alerter = services.metrics("alerter")
        classifier = services.metrics("classifier")
        figures = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "minutes": minutes,
            "target_rate": rate,
            "sent": sent,
            "refused_batches_records": refused,
            "scored": total(classifier, "crisiswatch_classifier_mentions_total", 'outcome="scored"') - WARMUP_MENTIONS,
            "counted": counted,
            "lost": sent - counted,
            "redeliveries_recognised": total(alerter, "crisiswatch_alerter_mentions_total", 'outcome="duplicate"'),
            "send_rate": sent / send_seconds,
            "throughput_incl_drain": counted / drained,
            "max_lag": max(lag_samples, default=0.0),
            "final_lag": lag_samples[-1] if lag_samples else 0.0,
            "p95_end_to_end_s": histogram_quantile(alerter, "crisiswatch_alerted_end_to_end_seconds", 0.95),
            "p50_end_to_end_s": histogram_quantile(alerter, "crisiswatch_alerted_end_to_end_seconds", 0.5),
            "rss_start_mib": rss_start,
            "rss_end_mib": rss_end,
        }
    finally:
        services.stop()
        broker.stop()
    table = Table("figure", "value", title=f"soak · {figures['machine']} · {minutes:g} min at {rate:g}/s")
    table.add_row("sent / scored / counted", f"{sent:,} / {figures['scored']:,.0f} / {counted:,.0f}")
    table.add_row(
        "lost · redeliveries recognised", f"{figures['lost']:,.0f} · {figures['redeliveries_recognised']:,.0f}"
    )
    table.add_row(
        "send rate · throughput incl. drain", f"{figures['send_rate']:.1f}/s · {figures['throughput_incl_drain']:.1f}/s"
    )
    table.add_row("classifier lag max · final", f"{figures['max_lag']:,.0f} · {figures['final_lag']:,.0f}")
    table.add_row("end-to-end p50 · p95", f"{figures['p50_end_to_end_s']:.2f} s · {figures['p95_end_to_end_s']:.2f} s")
    for name in SERVICES:
        table.add_row(
            f"RSS {name} (after warm-up → end)", f"{rss_start.get(name, 0):.0f} → {rss_end.get(name, 0):.0f} MiB"
        )
    console.print(table)
    console.print(f"logs: {workdir}")
    if output:
        output.write_text(json.dumps(figures, indent=2) + "\n")
    grew = any(rss_end[name] > 1.25 * rss_start[name] for name in rss_start if name in rss_end)
    if figures["lost"] > 0 or grew:
        console.print("[red]FAILED: mentions lost or memory grew[/red]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
