"""The floor under ``make bench-alerter``: how fast a faust agent that does nothing drains the same topic.

Run by :mod:`benchmarks.alerter` (``--floor``) as its own process: one agent
reads ``--topic`` in batches and with the fetch size of the alerter's
``detect`` agent (``take_events``), only counts the records, and prints the rate from the
first batch to the last. What the alerter does per mention comes on top.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Annotated

import faust
import typer

from crisiswatch.alerter.consumer import MAX_FETCH_BYTES


def main(
    bootstrap: Annotated[str, typer.Option()],
    topic: Annotated[str, typer.Option()],
    expect: Annotated[int, typer.Option(help="records to drain")],
    batch: Annotated[int, typer.Option()] = 2000,
    fetch_bytes: Annotated[int, typer.Option(help="per partition and fetch (faust's own default: 1 MiB)")] = (
        MAX_FETCH_BYTES
    ),
) -> None:
    """Drain ``topic`` with a counting agent and print ``records/s``."""
    app = faust.App(
        f"{topic}-floor",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="crisiswatch-floor-"),
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=fetch_bytes,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"records": 0, "first_at": 0.0, "first_batch": 0}

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch, within=0.5):
            if not seen["first_at"]:
                seen["first_at"], seen["first_batch"] = time.monotonic(), len(events)
            seen["records"] += len(events)
            if seen["records"] >= expect:
                rate = (seen["records"] - seen["first_batch"]) / (time.monotonic() - seen["first_at"])
                print(f"records/s {rate:.1f}", flush=True)
                os._exit(0)

    faust.Worker(app, loglevel="WARN", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    typer.run(main)
