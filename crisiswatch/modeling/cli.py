"""The model tools on the command line: ``crisiswatch classify`` for files, ``crisiswatch model train|eval``.

They load the model the classifier service would (``CLASSIFIER_*``, see
:mod:`crisiswatch.sentiment.loading`) but never touch Kafka. torch,
transformers and numpy are imported inside the commands, so mounting these
commands costs the ``crisiswatch`` command nothing.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from crisiswatch.runtime.logs import configure_logging
from crisiswatch.sentiment.loading import ModelSettings, load_model

model_cli = typer.Typer(help="Train and evaluate the sentiment model.", no_args_is_help=True)


def _read_texts(handle: TextIO, fmt: str, column: str) -> Iterator[str]:
    """The texts of a plain-text, JSONL (``text`` field) or CSV (``column``) file, in order."""
    if fmt == "csv":
        for row in csv.DictReader(handle):
            if column not in row:
                raise typer.BadParameter(f"CSV has no column {column!r}; columns: {list(row)}")
            yield row[column]
        return
    for number, line in enumerate(handle, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if fmt == "jsonl":
            try:
                yield str(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise typer.BadParameter(
                    f"line {number}: expected a JSON object with a 'text' field ({error})"
                ) from None
        else:
            yield line


def classify(
    path: Annotated[str, typer.Argument(help="file of texts, or - for standard input")] = "-",
    fmt: Annotated[str, typer.Option("--format", help="text, jsonl or csv; guessed from the file name")] = "",
    column: Annotated[str, typer.Option(help="CSV column holding the text")] = "text",
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
) -> None:
    """Score texts (plain lines, JSONL with ``text``, or CSV) and write JSONL with label, scores and model."""
    settings = ModelSettings()
    configure_logging("WARNING")
    guessed = fmt or (Path(path).suffix.lstrip(".").lower() if path != "-" else "text")
    fmt = guessed if guessed in {"jsonl", "csv"} else "text"
    model = load_model(settings)
    handle: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    with handle:
        texts = list(_read_texts(handle, fmt, column))
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        for text, scores in zip(chunk, model.predict(chunk, settings.max_batch_size), strict=True):
            row = {"text": text, "label": scores.label.value, "scores": scores.model_dump(), "model": model.name}
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


@model_cli.command("eval")
def evaluate(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TSV text<TAB>label or JSONL")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Macro recall, accuracy, per-class F1 and the confusion matrix of the configured model on a labelled file."""
    from rich.console import Console
    from rich.table import Table

    from crisiswatch.contracts.schemas import SENTIMENT_ORDER

    from .evaluation import classification_report
    from .labelled import read_labelled

    settings = ModelSettings()
    configure_logging("WARNING")
    rows = read_labelled(path)
    model = load_model(settings)
    predicted = [s.label for s in model.predict([r.text for r in rows], settings.max_batch_size)]
    report = classification_report([r.label for r in rows], predicted)
    if as_json:
        print(json.dumps({"model": model.name, "file": str(path), **report.as_dict()}, indent=2))
        return
    console = Console()
    runtime = model.runtime
    console.print(
        f"[bold]{model.name}[/] on {path} ({report.count} texts, {runtime.device}/{runtime.dtype}/{runtime.engine})"
    )
    console.print(f"macro recall {100 * report.macro_recall:.2f}   accuracy {100 * report.accuracy:.2f}")
    table = Table("true \\ predicted", *[s.value for s in SENTIMENT_ORDER], "recall", "F1")
    for i, sentiment in enumerate(SENTIMENT_ORDER):
        table.add_row(
            sentiment.value,
            *[str(v) for v in report.confusion[i]],
            f"{100 * report.recall[sentiment]:.1f}",
            f"{100 * report.f1[sentiment]:.1f}",
        )
    console.print(table)


@model_cli.command("train")
def train_command(
    data: Annotated[Path, typer.Option(help="labelled TSV")] = Path(
        "../shared/data/sentiment/english/semeval_2013_2016_train.tsv"
    ),
    output: Annotated[Path, typer.Option(help="artifact directory (rerun to resume)")] = Path("runs/sentiment"),
    seeds: Annotated[
        str, typer.Option(help="comma-separated run seeds; the runs are weight-averaged greedily")
    ] = "13,14,15,16,17,18,19,20",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    device: Annotated[str, typer.Option(help="cpu or cuda; default: cuda when present")] = "",
) -> None:
    """Fine-tune the default model from the shared SemEval data (seeded, resumable) and write its artifact."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .training import TrainConfig, default_device, train

    if not data.is_file():
        raise typer.BadParameter(f"{data} not found; point --data at the SemEval TSV")
    config = TrainConfig(data=data, output=output, seeds=tuple(int(s) for s in seeds.split(",")), epochs=epochs)
    target = torch.device(device) if device else default_device()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        tasks: dict[str, object] = {}

        def report(stage: str, done: int, total: int, values: dict[str, float]) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total, info="")
            info = " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
            progress.update(tasks[stage], completed=done, info=info)  # type: ignore[arg-type]

        metrics_out = train(config, target, report)
    Console().print_json(json.dumps(metrics_out))
