"""The multilingual path in ``make bench``: texts/s and resident memory of one process serving the e5 heads.

Run in a fresh process (``multiprocessing`` spawn) that loads what one
classifier process loads with every e5 model in use (the English MiniLM, one
Hebrew e5 model and the multilingual head), so its peak RSS is a classifier's,
not the benchmark's with every precision of the English model loaded before it. It scores the same English
sample as the rest of the benchmark with the multilingual head (every
language without its own model goes there), then the Hebrew dev set with the
Hebrew model: by default the blend ``hebrew-e5`` (n-grams averaged with a frozen-e5 head). ``--hebrew-models``
names others, each measured in its own fresh process: e.g. the folder ``crisiswatch model finetune-e5 --out``
wrote (fine-tuned top layers blended with the n-grams).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Sequence
from pathlib import Path

from crisiswatch.modeling.evaluation import classification_report
from crisiswatch.modeling.labelled import LabelledText, read_labelled

HEBREW_DEV = Path(__file__).resolve().parents[2] / "shared/data/sentiment/hebrew/dev.tsv"


def _rate(scorer: object, rows: Sequence[LabelledText], batch_size: int) -> dict[str, object]:
    texts = [row.text for row in rows]
    scorer.predict(texts[: batch_size * 2], batch_size)  # type: ignore[attr-defined]
    started = time.perf_counter()
    scores = scorer.predict(texts, batch_size)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    report = classification_report([row.label for row in rows], [score.label for score in scores])
    return {
        "mentions_per_s": round(len(texts) / elapsed, 1),
        "macro_recall": round(100 * report.macro_recall, 2),
        "accuracy": round(100 * report.accuracy, 2),
    }


HEBREW_E5_MODELS = ("hebrew-e5",)
"""The e5-based Hebrew models measured by default, each in its own fresh process beside MiniLM and the
multilingual head."""


def _measure(rows: Sequence[LabelledText], batch_size: int, queue: multiprocessing.Queue, hebrew_model: str) -> None:
    """In the child: load every model the classifier loads by default, score with the e5 ones, report peak RSS."""
    from crisiswatch.sentiment.loading import ModelSettings, load_models

    started = time.perf_counter()
    routes = {"en": "default", "und": "default", "he": hebrew_model, "*": "multilingual"}
    models = load_models(ModelSettings(models=routes))
    figures: dict[str, object] = {"load_s": round(time.perf_counter() - started, 1)}
    multilingual, hebrew = models.scorer_for("xx"), models.scorer_for("he")
    if multilingual is not None:
        figures["multilingual"] = {
            "model": multilingual.name,
            **multilingual.describe(),
            **_rate(multilingual, rows, batch_size),
        }
    if hebrew is not None and HEBREW_DEV.is_file():
        dev = read_labelled(HEBREW_DEV, "hebrew")
        rate = _rate(hebrew, dev, batch_size)
        # The shipped Hebrew model was fitted on train + dev: its dev figures are not held out, only its speed counts.
        figures["hebrew_dev"] = {"model": hebrew.name, "mentions_per_s": rate["mentions_per_s"]}
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put(figures)


def bench_multilingual(
    rows: Sequence[LabelledText], batch_size: int = 64, hebrew_models: Sequence[str] = HEBREW_E5_MODELS
) -> dict[str, object]:
    """The multilingual and Hebrew models' figures, each Hebrew model (name or folder) in its own fresh process."""
    context = multiprocessing.get_context("spawn")
    figures: dict[str, object] = {}
    for hebrew_model in hebrew_models:
        queue: multiprocessing.Queue = context.Queue()
        child = context.Process(target=_measure, args=(list(rows), batch_size, queue, hebrew_model))
        child.start()
        figures[f"with he = {hebrew_model}"] = queue.get()
        child.join()
    return figures
