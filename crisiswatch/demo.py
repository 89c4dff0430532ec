"""``make demo``: the whole pipeline on one machine with no account, network or download.

Starts the embedded broker and the three services as separate processes (as
they run in production), plays the built-in scenario fast, shows a live status
line per brand and the alerts as they fire, then stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from kafka import KafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crisiswatch.alerter.alert_blocks import headline
from crisiswatch.alerter.seeding import write_seeds
from crisiswatch.alerter.settings import AlerterSettings
from crisiswatch.analysis.backtest import seed_states, truth_labelled
from crisiswatch.contracts.schemas import Incident, ScoredMention
from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.ingest.scenario import demo_history, demo_scenario, generate
from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.kafka import KafkaSettings

DEMO_DIR = Path(".crisiswatch/demo")
HISTORY_DAYS = 7
console = Console()


@dataclass
class BrandStatus:
    """Running counts for the status table."""

    scored: int = 0
    negative: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=50))
    latest: str = ""


def _service(module: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def _status_table(status: dict[str, BrandStatus], alerts: list[Incident], expected: int) -> Table:
    table = Table(title=f"crisiswatch demo · {sum(s.scored for s in status.values())}/{expected} mentions scored")
    for column in ("brand", "scored", "negative", "negative share (last 50)", "scenario time", "incident"):
        table.add_column(column)
    open_by_brand = {a.brand: a for a in alerts}
    for brand, s in sorted(status.items()):
        share = sum(s.recent) / len(s.recent) if s.recent else 0.0
        incident = open_by_brand.get(brand)
        label = f"{incident.severity.value} {incident.event.value}" if incident else "—"
        table.add_row(brand, str(s.scored), str(s.negative), f"{100 * share:.0f}%", s.latest, label)
    return table


def _seed_history(bootstrap_servers: str, days: int = HISTORY_DAYS) -> str:
    """Start the demo's brands warm: ``days`` of calm, labelled history before the scenario, seeded into the alerter.

    What ``crisiswatch alerter seed`` does with a recorded file; without it
    every brand would spend the whole demo learning what is normal.
    """
    mentions = truth_labelled(demo_history(days), model="history")
    settings = AlerterSettings()
    config = DetectorConfig(bucket=timedelta(minutes=settings.bucket_minutes), sensitivity=settings.sensitivity)
    states = seed_states(mentions, config, timedelta(minutes=settings.lateness_minutes))
    write_seeds(states, settings, KafkaSettings(bootstrap_servers=bootstrap_servers))
    return f"{days} days of labelled history"


SOURCES = ("scenario", "bluesky", "mastodon")
"""Where the demo's mentions come from: the scenario played directly, or heard as a live network's stream."""


def _listener_args(
    source: str,
    speed: float,
    frames: Path | None,
    expected: int,
    env: dict[str, str],
    started: dict[str, subprocess.Popen[bytes]],
) -> list[str]:
    """The listener's command line; for a network, its recorded-frame server is started (into ``started``) first."""
    if source == "scenario":
        return ["scenario", "--speed", str(speed)]
    scenario_s = 10 * 3600 / speed if speed > 0 else 1.0
    rate = max(expected / scenario_s, 1.0)
    frames_port = free_port()
    args = ["frames", source, *([str(frames)] if frames else []), "--port", str(frames_port), "--rate", f"{rate:.1f}"]
    started["frames"] = _service("crisiswatch.listener", args, env, DEMO_DIR / f"{source}-frames.log")
    cursor = DEMO_DIR / f"cursor-{source}.json"
    cursor.unlink(missing_ok=True)
    env["LISTENER_STREAM_CURSOR_FILE"] = str(cursor)
    if source == "bluesky":
        return ["bluesky", "--url", f"ws://127.0.0.1:{frames_port}/subscribe", "--history"]
    return ["mastodon", "--instance", f"http://127.0.0.1:{frames_port}", "--history"]


def run_demo(
    speed: float = 600.0, port: int = 0, timeout_s: float = 600.0, source: str = "scenario", frames: Path | None = None
) -> int:
    """Run the demo; returns 0 when the scenario's crisis was alerted, 1 otherwise.

    ``source`` ``bluesky`` or ``mastodon`` serves the scenario (or the
    recording ``frames``) as that network's live stream, and the listener
    listens to it as it would to the network itself.
    """
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    alerts_file = DEMO_DIR / "alerts.jsonl"
    alerts_file.unlink(missing_ok=True)
    expected = sum(1 for _ in generate(demo_scenario()))
    if frames is not None:
        expected = sum(1 for line in frames.read_text(encoding="utf-8").splitlines() if line.strip())
    ports = {name: free_port() for name in ("listener", "classifier", "alerter")}
    broker = EmbeddedBroker(port=port or free_port(), log_file=DEMO_DIR / "broker.log").start()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LISTENER_METRICS_PORT": str(ports["listener"]),
        "CLASSIFIER_METRICS_PORT": str(ports["classifier"]),
        "ALERTER_METRICS_PORT": str(ports["alerter"]),
        "ALERTER_ALERTS_FILE": str(alerts_file),
        "ALERTER_DATA_DIR": str(DEMO_DIR / "alerter-state"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    seeded = _seed_history(broker.bootstrap_servers)
    processes: dict[str, subprocess.Popen[bytes]] = {
        "classifier": _service("crisiswatch.classifier", ["run"], env, DEMO_DIR / "classifier.log"),
        "alerter": _service("crisiswatch.alerter", ["run"], env, DEMO_DIR / "alerter.log"),
    }
    listener_args = _listener_args(source, speed, frames, expected, env, processes)
    processes["listener"] = _service("crisiswatch.listener", listener_args, env, DEMO_DIR / "listener.log")
    console.print(
        f"[bold]crisiswatch demo[/]: broker on {broker.bootstrap_servers}, replaying {expected} mentions "
        f"{'' if source == 'scenario' else f'as a {source} stream '}"
        f"(4 brands, 10 h of scenario time at {speed:.0f}×), the alerter seeded with {seeded}. Logs in {DEMO_DIR}/."
    )
    topics = Topics()
    watcher = KafkaConsumer(
        topics.scored,
        topics.alerts,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    status: dict[str, BrandStatus] = defaultdict(BrandStatus)
    alerts: list[Incident] = []
    started = time.monotonic()
    finished_at: float | None = None
    try:
        with Live(_status_table(status, alerts, expected), console=console, refresh_per_second=4) as live:
            while time.monotonic() - started < timeout_s:
                for records in watcher.poll(timeout_ms=250).values():
                    for record in records:
                        if record.topic == topics.alerts:
                            incident = Incident.model_validate_json(record.value)
                            alerts.append(incident)
                            live.console.print(f"[bold red]ALERT[/] {headline(incident)}")
                            continue
                        mention = ScoredMention.model_validate_json(record.value)
                        brand = status[mention.brand]
                        brand.scored += 1
                        brand.negative += mention.label.value == "negative"
                        brand.recent.append(mention.label.value == "negative")
                        brand.latest = f"{mention.created_at:%H:%M}"
                live.update(_status_table(status, alerts, expected))
                for name, process in processes.items():
                    if name != "listener" and process.poll() is not None:
                        live.console.print(f"[red]{name} exited with {process.returncode}; see {DEMO_DIR}/{name}.log")
                        return 1
                done = sum(s.scored for s in status.values()) >= expected
                if done and finished_at is None:
                    finished_at = time.monotonic()
                if finished_at is not None and time.monotonic() - finished_at > 8:
                    break
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        watcher.close()
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
    console.print(
        f"Metrics were served at http://127.0.0.1:{ports['listener']}/metrics (listener), "
        f":{ports['classifier']}/metrics (classifier), :{ports['alerter']}/metrics (alerter) while the demo ran."
    )
    console.print(f"Alerts as delivered (Block Kit JSON): {alerts_file}")
    opened = [a for a in alerts if a.event.value == "opened"]
    return 0 if opened else 1
