"""The model tools on the command line: ``crisiswatch classify`` for files, ``crisiswatch model train|eval``.

They load the models the classifier service would (``CLASSIFIER_*``, see
:mod:`crisiswatch.sentiment.loading`), one per language, but never touch Kafka.
torch, transformers and scikit-learn are imported inside the commands, so
mounting them costs the ``crisiswatch`` command little.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from crisiswatch.runtime.logs import configure_logging
from crisiswatch.sentiment.loading import ModelSettings, load_models
from crisiswatch.sentiment.routing import LanguageModels

from .e5_finetune import finetune_e5
from .e5_training import train_e5
from .ngram_training import train_ngram

if TYPE_CHECKING:
    from collections.abc import Collection

    from rich.progress import Progress, TaskID

model_cli = typer.Typer(help="Train and evaluate the sentiment models.", no_args_is_help=True)
model_cli.command("train-ngram")(train_ngram)
model_cli.command("train-e5")(train_e5)
model_cli.command("finetune-e5")(finetune_e5)


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
    language: Annotated[
        str, typer.Option(help="'auto' identifies each text's language, as the listener does; or a code such as he")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    brand_languages: Annotated[
        str, typer.Option(help="the brand's languages, e.g. 'en' or 'he,en': short or unsure texts lean on them")
    ] = "",
) -> None:
    """Score texts (plain lines, JSONL with ``text``, or CSV), each with its language's model, as JSONL."""
    from crisiswatch.ingest.language import guess_language
    from crisiswatch.sentiment.routing import score_routed

    settings = ModelSettings()
    configure_logging("WARNING")
    guessed = fmt or (Path(path).suffix.lstrip(".").lower() if path != "-" else "text")
    fmt = guessed if guessed in {"jsonl", "csv"} else "text"
    models = _loaded(settings)
    expected = tuple(code.strip().lower() for code in brand_languages.split(",") if code.strip())
    handle: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    with handle:
        texts = list(_read_texts(handle, fmt, column))
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        languages = [guess_language(text).leaning_on(expected) if language == "auto" else language for text in chunk]
        routed = score_routed(chunk, languages, models, settings.max_batch_size)
        for text, lang, model, score in zip(chunk, languages, routed.models, routed.scores, strict=True):
            row: dict[str, object] = {"text": text, "language": lang, "model": model}
            if score is not None:
                row |= {"label": score.label.value, "scores": score.model_dump()}
            else:
                row |= {"label": None, "scores": None}
                if model is not None:
                    row["error"] = "the model failed on this text"
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def _loaded(settings: ModelSettings, languages: Collection[str] | None = None) -> LanguageModels:
    """The models of the language mapping (only ``languages``' when given), or a clear command-line error."""
    try:
        return load_models(settings, languages)
    except (ValueError, OSError) as error:
        raise typer.BadParameter(f"cannot load the models of CLASSIFIER_MODELS: {error}") from None


@model_cli.command("eval")
def evaluate(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TSV text<TAB>label or JSONL")],
    language: Annotated[str, typer.Option(help="the file's language: its model (CLASSIFIER_MODELS) is scored")] = "en",
    labels: Annotated[
        str, typer.Option(help="what numeric labels mean: semeval (neg/neu/pos) or hebrew (pos/neg/off-topic)")
    ] = "semeval",
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Macro recall, accuracy, per-class F1 and the confusion matrix of a language's model on a labelled file.

    Also the macro recall over positive and negative only (how well the two
    classes a crisis turns on are told apart) and texts/s of the whole pass.
    """
    import time

    from rich.console import Console
    from rich.table import Table

    from crisiswatch.contracts.schemas import SENTIMENT_ORDER

    from .evaluation import classification_report
    from .labelled import read_labelled

    settings = ModelSettings()
    configure_logging("WARNING")
    try:
        rows = read_labelled(path, labels)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    scorer = _loaded(settings, [language]).scorer_for(language)
    if scorer is None:
        raise typer.BadParameter(f"no model is mapped to {language!r} and there is no '*' fallback (CLASSIFIER_MODELS)")
    started = time.perf_counter()
    predicted = [s.label for s in scorer.predict([r.text for r in rows], settings.max_batch_size)]
    texts_per_s = len(rows) / max(time.perf_counter() - started, 1e-9)
    report = classification_report([r.label for r in rows], predicted)
    runs_on = scorer.describe()
    if as_json:
        summary = {"model": scorer.name, "language": language, "file": str(path), "texts_per_s": round(texts_per_s)}
        print(json.dumps(summary | runs_on | report.as_dict(), indent=2))
        return
    console = Console()
    where = "/".join(runs_on[k] for k in ("device", "dtype", "engine"))
    console.print(f"[bold]{scorer.name}[/] ({language}) on {path} ({report.count} texts, {where})")
    console.print(
        f"macro recall {100 * report.macro_recall:.2f}   positive/negative macro recall "
        f"{100 * report.polar_macro_recall:.2f}   accuracy {100 * report.accuracy:.2f}   {texts_per_s:,.0f} texts/s"
    )
    table = Table("true \\ predicted", *[s.value for s in SENTIMENT_ORDER], "recall", "F1")
    for i, sentiment in enumerate(SENTIMENT_ORDER):
        table.add_row(
            sentiment.value,
            *[str(v) for v in report.confusion[i]],
            f"{100 * report.recall[sentiment]:.1f}",
            f"{100 * report.f1[sentiment]:.1f}",
        )
    console.print(table)


def _progress_bars() -> tuple[Progress, Callable[[str, int, int, dict[str, float]], None]]:
    """A rich progress display (to stderr) and the training callback that feeds it, one bar per run."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int, values: dict[str, float]) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, info="")
        info = " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        progress.update(tasks[stage], completed=done, info=info)

    return progress, report


SEMEVAL_TRAIN = Path("../shared/data/sentiment/english/semeval_2013_2016_train.tsv")


@model_cli.command("train")
def train_command(
    data: Annotated[Path, typer.Option(help="labelled TSV")] = SEMEVAL_TRAIN,
    output: Annotated[Path, typer.Option(help="artifact directory (rerun to resume)")] = Path("runs/sentiment"),
    seeds: Annotated[
        str, typer.Option(help="comma-separated run seeds; the runs are weight-averaged greedily")
    ] = "13,14,15,16,17,18,19,20",
    recipe: Annotated[str, typer.Option(help="tuned (the shipped recipe) or plain; see `model cv`")] = "tuned",
    epochs: Annotated[int, typer.Option(min=0, help="override the recipe's epochs (0 keeps them)")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda; default: cuda when present")] = "",
) -> None:
    """Fine-tune the default model from the shared SemEval data (seeded, resumable) and write its artifact."""
    import dataclasses

    import torch
    from rich.console import Console

    from .training import TrainConfig, default_device, train
    from .training import recipe as with_recipe

    if not data.is_file():
        raise typer.BadParameter(f"{data} not found; point --data at the SemEval TSV")
    try:
        config = with_recipe(
            TrainConfig(data=data, output=output, seeds=tuple(int(s) for s in seeds.split(","))), recipe
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if epochs:
        config = dataclasses.replace(config, epochs=epochs)
    target = torch.device(device) if device else default_device()
    progress, report = _progress_bars()
    with progress:
        metrics_out = train(config, target, report)
    Console().print_json(json.dumps(metrics_out))


@model_cli.command("cv")
def cross_validate_command(
    data: Annotated[Path, typer.Option(help="labelled TSV: the whole training pool")] = SEMEVAL_TRAIN,
    output: Annotated[Path, typer.Option(help="runs and cv.json go here (rerun to resume)")] = Path("runs/cv"),
    recipes: Annotated[str, typer.Option(help="comma-separated recipes to compare")] = "tuned,plain",
    folds: Annotated[int, typer.Option(min=2)] = 5,
    seed: Annotated[int, typer.Option(help="the run seed of every fold")] = 13,
    device: Annotated[str, typer.Option(help="cpu or cuda; default: cuda when present")] = "",
) -> None:
    """Choose the English recipe by k-fold cross-validation: macro recall per held-out fold, mean and spread.

    One run per recipe and fold (5 folds × 2 recipes ≈ 10 runs: minutes each on
    a GPU, about 35 minutes each on a 2-core CPU). Resumable.
    """
    import torch
    from rich.console import Console

    from .training import TrainConfig, cross_validate, default_device

    if not data.is_file():
        raise typer.BadParameter(f"{data} not found; point --data at the training pool")
    config = TrainConfig(data=data, output=output, folds=folds)
    target = torch.device(device) if device else default_device()
    progress, report = _progress_bars()
    try:
        with progress:
            summary = cross_validate(config, [r.strip() for r in recipes.split(",")], target, seed, report)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    Console().print_json(json.dumps(summary))
