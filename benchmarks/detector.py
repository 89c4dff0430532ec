"""``make bench-detector``: how many scored mentions per second the detector core handles on one core.

The core is what the alerter runs per mention and per closed bucket, and
what backtests run: ``windows.add_mention`` / ``close_ready`` and
``lifecycle.judge``, driven here through ``analysis.backtest.replay``. Mentions
come from the seeded scenario generator (brands with a daily rhythm, crises,
a viral spike) and are built before the clock starts, so the figure is the
detector's alone, not JSON parsing or the model. CPU time of this process is
measured, so it is the rate of one core.
"""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crisiswatch.analysis.backtest import replay, truth_labelled
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.ingest.scenario import BrandTraffic, Crisis, Scenario, ViralPositive

START = datetime(2026, 3, 2, tzinfo=UTC)


def workload(brands: int, days: float, mentions_per_hour: float) -> Scenario:
    """``brands`` brands at ``mentions_per_hour`` each with one storm per brand and one viral spike."""
    traffic = tuple(
        BrandTraffic(f"brand-{i:03d}", f"Brand {i}", f"Brand{i}", mentions_per_hour=mentions_per_hour)
        for i in range(brands)
    )
    onsets = [START + timedelta(days=days / 2, hours=i % 24) for i in range(brands)]
    crises = tuple(
        Crisis(t.brand, onset, timedelta(hours=2), "outage", 4 * t.mentions_per_hour)
        for t, onset in zip(traffic, onsets, strict=True)
    )
    viral = (ViralPositive(traffic[0].brand, START + timedelta(hours=10), timedelta(hours=1), 5 * mentions_per_hour),)
    return Scenario("bench", START, timedelta(days=days), traffic, crises, viral, seed=3)


def main(
    brands: Annotated[int, typer.Option(help="brands in the stream")] = 20,
    days: Annotated[float, typer.Option(help="days of traffic")] = 2.0,
    rate: Annotated[float, typer.Option(help="mentions per hour per brand")] = 600.0,
    bucket_minutes: Annotated[float, typer.Option(help="bucket width")] = 1.0,
    repeat: Annotated[int, typer.Option(help="runs; the best is reported")] = 3,
) -> None:
    """Build the workload, then time the detector core over it ``repeat`` times."""
    console = Console()
    console.print(f"building the workload: {brands} brands x {days:g} days at {rate:g} mentions/h ...")
    mentions = truth_labelled(workload(brands, days, rate), model="bench")
    config = DetectorConfig(bucket=timedelta(minutes=bucket_minutes))
    timings = []
    for _ in range(repeat):
        started = time.process_time()
        replays = replay(mentions, config)
        timings.append(time.process_time() - started)
    best = min(timings)
    buckets = sum(len(r.verdicts) for r in replays.values())
    incidents = sum(1 for r in replays.values() for i in r.incidents if i.event.value == "opened")
    table = Table("mentions", "brand-buckets", "incidents", "best CPU s", "mentions/s", "buckets/s", title=(
        f"detector core, one core · {platform.processor() or platform.machine()} · Python {platform.python_version()}"
    ))  # fmt: skip
    table.add_row(
        f"{len(mentions):,}", f"{buckets:,}", str(incidents), f"{best:.2f}", f"{len(mentions) / best:,.0f}",
        f"{buckets / best:,.0f}",
    )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
