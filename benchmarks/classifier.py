"""``make bench``: classifier throughput, batch latency and accuracy, alone and through the broker.

For each precision it scores a fixed labelled sample (the project's dev split
of the shared SemEval data when present, else the demo scenario's texts with
their generated labels), reporting mentions/s, p50/p95 batch latency and
macro recall, so a faster setting that costs accuracy shows. It then runs the
real classifier service loop against the embedded broker and reports the
end-to-end rate, then scores the sample alone once more: ``broker_share_pct`` is
the rate through the broker over the mean of the two alone rates, so a
machine whose speed drifts during the run does not bias it. Figures depend on
the machine: the header says which.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import resource
import threading
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from kafka import KafkaConsumer
from prometheus_client import REGISTRY
from rich.console import Console
from rich.table import Table

from crisiswatch.classifier.service import ClassifierService
from crisiswatch.contracts.schemas import Mention, Sentiment, SentimentScores
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.scenario import demo_scenario, generate
from crisiswatch.modeling.evaluation import classification_report
from crisiswatch.modeling.labelled import LabelledText, read_labelled
from crisiswatch.modeling.training import stratified_split
from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.kafka import AckedProducer, KafkaSettings, make_consumer, make_producer
from crisiswatch.runtime.stop_signal import StopSignal
from crisiswatch.sentiment.batching import BatchPolicy, plan_batches
from crisiswatch.sentiment.loading import freeze_loaded_objects
from crisiswatch.sentiment.model import Runtime, SentimentModel, choose_runtime
from crisiswatch.sentiment.routing import LanguageModels

SEMEVAL = Path(__file__).resolve().parents[2] / "shared/data/sentiment/english/semeval_2013_2016_train.tsv"
console = Console()


def labelled_sample(size: int) -> tuple[str, list[LabelledText]]:
    """The fixed evaluation sample and where it came from."""
    if SEMEVAL.is_file():
        _, dev = stratified_split(read_labelled(SEMEVAL), dev_fraction=0.1, seed=2026)
        step = max(1, len(dev) // size)
        return "SemEval dev split (project split, seed 2026, every k-th row)", dev[::step][:size]
    rows = [LabelledText(r["text"], Sentiment(r["truth"]["sentiment"])) for r in generate(demo_scenario())]
    return "demo scenario texts (generated labels)", rows[:size]


def rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_alone(model: SentimentModel, rows: list[LabelledText], batch_size: int, chunk: int) -> dict[str, object]:
    """Throughput of ``SentimentModel.predict`` (the service's code path), then per-batch latency."""
    texts = [r.text for r in rows]
    model.predict(texts[: batch_size * 4], batch_size, chunk)
    rate, scores = alone_rate(model, texts, batch_size, chunk)
    report = classification_report([r.label for r in rows], [s.label for s in scores])
    encoded = model.encode(texts[:20_000])
    latencies: list[float] = []
    for batch in plan_batches([len(e) for e in encoded], batch_size):
        t = time.perf_counter()
        model.scores_for_ids([encoded[i] for i in batch])
        latencies.append(time.perf_counter() - t)
    return {
        "mentions_per_s": rate,
        "p50_batch_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
        "p95_batch_ms": round(1000 * float(np.percentile(latencies, 95)), 1),
        "macro_recall": round(100 * report.macro_recall, 2),
        "accuracy": round(100 * report.accuracy, 2),
    }


def alone_rate(
    model: SentimentModel, texts: list[str], batch_size: int, chunk: int
) -> tuple[float, list[SentimentScores]]:
    """Mentions/s of one ``SentimentModel.predict`` over ``texts``, and its scores."""
    started = time.perf_counter()
    scores = model.predict(texts, batch_size, chunk)
    return round(len(texts) / (time.perf_counter() - started), 1), scores


def padding(lengths: list[int], group: int, batch_size: int, cost: int) -> float:
    """Padded tokens over real tokens when texts of these token ``lengths`` are cut into batches ``group`` at a time."""
    padded = 0
    for start in range(0, len(lengths), group):
        chunk = lengths[start : start + group]
        padded += sum(len(b) * max(chunk[i] for i in b) for b in plan_batches(chunk, batch_size, cost))
    return round(padded / sum(lengths), 3)


def bench_through_broker(
    model: SentimentModel, rows: list[LabelledText], policy: BatchPolicy, warmup: int = 1000
) -> float:
    """Mentions/s of the classifier service consuming the sample from a real broker and producing its scores.

    The service loop runs on the main thread, as in the service process (torch
    runs measurably slower when driven from a second thread). A watcher thread
    reads the service's own count of records the broker has acknowledged
    (``crisiswatch_classifier_mentions_total{outcome="scored"}``) every 20 ms,
    rather than consuming the results, whose decoding would take CPU from the
    service being measured. The first ``warmup`` texts go through first and
    are not timed, as the alone figure has its warm-up: the clock runs from
    the count passing the warm-up to the count passing the sample. A pass is
    counted once the next one has been scored, so the sample is followed by
    two full passes of untimed texts (the sample again, however short it is):
    the end is then seen as late as the start.
    """
    warmup = min(warmup, len(rows))
    trailer = list(itertools.islice(itertools.cycle(rows), 2 * policy.max_pending))
    sent = rows[:warmup] + rows + trailer
    with EmbeddedBroker(port=free_port()) as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        topics = Topics()
        consumer = joined(make_consumer(kafka, "bench", [topics.raw], "bench"))
        producer = make_producer(kafka, "bench")
        for i, row in enumerate(sent):
            mention = Mention(id=f"b{i}", source="bench", brand="acme-air", text=row.text, created_at=time.time())
            producer.send(topics.raw, key=b"acme-air", value=mention.to_bytes())
        producer.close()
        service = ClassifierService(
            LanguageModels({}, fallback=model),
            consumer,
            AckedProducer.for_settings(kafka, "bench-classifier"),
            topics,
            policy,
        )
        stop = StopSignal(install_handlers=False)
        before = acknowledged()
        seen = seen_warm = 0
        warm = finished = 0.0

        def watch() -> None:
            nonlocal seen, seen_warm, warm, finished
            deadline = time.monotonic() + 600
            while seen < warmup + len(rows) and time.monotonic() < deadline:
                time.sleep(0.02)
                seen = acknowledged() - before
                if not warm and seen >= warmup:
                    seen_warm, warm = seen, time.perf_counter()
            finished = time.perf_counter()
            stop.set()

        watching = threading.Thread(target=watch, daemon=True)
        watching.start()
        service.run(stop)
        watching.join(30)
        timed = seen - seen_warm
        return round(timed / max(finished - warm, 1e-9), 1)


def acknowledged() -> int:
    """Records the classifier service in this process has had acknowledged by the broker so far."""
    value = REGISTRY.get_sample_value("crisiswatch_classifier_mentions_total", {"outcome": "scored"})
    return int(value or 0)


def joined(consumer: KafkaConsumer, timeout_s: float = 60) -> KafkaConsumer:
    """Poll ``consumer`` until the group has given it its partitions (nothing is waiting to be read yet)."""
    deadline = time.monotonic() + timeout_s
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions assigned within {timeout_s} s; the figure would include the wait")
        consumer.poll(timeout_ms=100)
    return consumer


def main(
    size: Annotated[int, typer.Option(help="texts in the fixed sample")] = 4000,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    chunk: Annotated[int, typer.Option(min=1, help="texts tokenised at a time, ahead of the model")] = 4096,
    lookahead_batches: Annotated[
        int, typer.Option(min=1, help="model batches per pass in the service")
    ] = BatchPolicy.lookahead_batches,
    dtypes: Annotated[
        str, typer.Option(help="comma-separated precisions to compare, each optionally DTYPE:ENGINE (fp32:onnxruntime)")
    ] = "fp32,fp32:onnxruntime,int8,auto",
    device: str = "auto",
    broker: Annotated[bool, typer.Option(help="also measure through the embedded broker")] = True,
    output: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="score the sample this many times (for fast devices)")] = 1,
    multilingual: Annotated[bool, typer.Option(help="also measure the e5 models (multilingual, Hebrew)")] = True,
    hebrew_models: Annotated[
        str, typer.Option(help="comma-separated Hebrew e5 models, names or folders (one from finetune-e5)")
    ] = "hebrew-e5",
) -> None:
    """Run the classifier benchmark and print a table."""
    source, rows = labelled_sample(size)
    rows = rows * repeat
    texts = [r.text for r in rows]
    header = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "sample": f"{len(rows)} texts from {source}",
        "batch_policy": f"length-bucketed (on a CPU cut where lengths jump), max {batch_size}, "
        f"tokenised {chunk} ahead; in the service "
        f"{lookahead_batches} batches per pass, max wait 50 ms",
    }
    console.print(header)
    results: list[dict[str, object]] = []
    runtimes: list[Runtime] = []
    for spec in dtypes.split(","):
        dtype, _, engine = spec.partition(":")
        try:
            runtime = choose_runtime(device, dtype, engine=engine or "auto")
        except ValueError as error:
            console.print(f"skipping {spec}: {error}")
            continue
        if runtime in runtimes:
            continue
        runtimes.append(runtime)
        model = SentimentModel.load("default", runtime)
        freeze_loaded_objects()
        figures = {
            "device": runtime.device,
            "dtype": runtime.dtype,
            "engine": runtime.engine,
            "threads": runtime.threads,
        }
        figures |= bench_alone(model, rows, batch_size, chunk)
        pass_size = batch_size * lookahead_batches
        lengths = [len(ids) for ids in model.encode(texts)]
        figures["tokens_per_text"] = round(sum(lengths) / len(lengths), 1)
        figures["padding_alone"] = padding(lengths, chunk, batch_size, model.batch_cost_tokens)
        figures["padding_pass_even"] = padding(lengths, pass_size, batch_size, 0)
        figures["padding_pass_planned"] = padding(lengths, pass_size, batch_size, model.batch_cost_tokens)
        if broker:
            policy = BatchPolicy(batch_size, 0.05, lookahead_batches)
            through = bench_through_broker(model, rows, policy)
            after, _ = alone_rate(model, texts, batch_size, chunk)
            figures["through_broker_per_s"] = through
            figures["alone_after_per_s"] = after
            figures["broker_share_pct"] = round(100 * through / ((float(figures["mentions_per_s"]) + after) / 2))
        figures["peak_rss_mb"] = round(rss_mb())
        results.append(figures)
        del model
    table = Table("", *(f"{r['device']} {r['dtype']} {r['engine']}" for r in results), title="classifier benchmark")
    for name in results[0]:
        table.add_row(name, *(str(figures.get(name, "")) for figures in results))
    console.print(table)
    e5: dict[str, object] = {}
    if multilingual:
        from .multilingual import bench_multilingual

        e5 = bench_multilingual(rows, batch_size, hebrew_models.split(","))
        console.print({"multilingual path (one fresh process, CLASSIFIER_* defaults)": e5})
    if output:
        output.write_text(json.dumps({"header": header, "results": results, "multilingual": e5}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
