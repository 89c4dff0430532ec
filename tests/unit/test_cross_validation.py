"""Choosing the English recipe by k-fold cross-validation: folds that cover the pool once, a tiny real run, the CLI."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment
from crisiswatch.modeling.cli import model_cli
from crisiswatch.modeling.labelled import LabelledText

# crisiswatch.modeling.training (torch, transformers) loads inside the tests, not when every pytest-xdist worker
# collects this module (see MODEL_MODULES in conftest.py).

ROWS = [
    LabelledText(f"text {i} " + ("awful" if i % 3 == 0 else "fine" if i % 3 == 1 else "great"), SENTIMENT_ORDER[i % 3])
    for i in range(60)
]


def test_folds_hold_out_every_text_once_and_keep_each_class_share() -> None:
    from crisiswatch.modeling.training import TrainConfig, held_out_split, stratified_folds

    assignment = stratified_folds(ROWS, 5, seed=2026)
    assert Counter(assignment) == {fold: 12 for fold in range(5)}
    for fold in range(5):
        labels = Counter(row.label for row, f in zip(ROWS, assignment, strict=True) if f == fold)
        assert labels == {Sentiment.NEGATIVE: 4, Sentiment.NEUTRAL: 4, Sentiment.POSITIVE: 4}
    assert assignment == stratified_folds(ROWS, 5, seed=2026), "the same folds on every machine"
    config = TrainConfig(data=Path("unused"), output=Path("unused"), fold=2)
    train, held_out = held_out_split(config, ROWS)
    assert len(held_out) == 12 and len(train) == 48
    assert not {r.text for r in held_out} & {r.text for r in train}
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_folds(ROWS, 1, seed=1)


def test_a_recipe_changes_only_its_own_settings() -> None:
    from crisiswatch.modeling.training import RECIPES, TrainConfig, recipe

    base = TrainConfig(data=Path("d"), output=Path("o"))
    plain = recipe(base, "plain")
    assert plain.learning_rate == 5e-5 and plain.epochs == 2 and plain.class_balance == 0.0
    assert recipe(base, "tuned") == base
    assert replace(plain, **{k: getattr(base, k) for k in RECIPES["plain"]}) == base
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe(base, "magic")


@pytest.mark.slow
def test_cross_validation_trains_a_run_per_recipe_and_fold_and_reports_mean_and_spread(tmp_path: Path) -> None:
    import torch

    from crisiswatch.modeling.training import TrainConfig, cross_validate

    data = tmp_path / "pool.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{r.text}\t{SENTIMENT_ORDER.index(r.label)}\n" for r in ROWS[:30]))
    config = TrainConfig(data=data, output=tmp_path / "cv", folds=2, epochs=1, batch_size=8, bf16=False)
    summary = cross_validate(config, ["tuned", "plain"], torch.device("cpu"))
    for name in ("tuned", "plain"):
        result = summary[name]
        assert len(result["folds"]) == 2 and all(0 <= score <= 100 for score in result["folds"])
        assert (tmp_path / "cv" / name / "fold-1" / "seed-13" / "final.safetensors").is_file()
    assert summary["best"] in ("tuned", "plain")
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["best"] == summary["best"]


def test_the_training_commands_run_on_their_defaults_and_name_missing_data(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in ("train", "cv"):
        result = runner.invoke(model_cli, [command, "--data", str(tmp_path / "none.tsv")])
        assert result.exit_code == 2 and "not found" in _plain(result.output), result.output


def test_eval_names_a_model_that_cannot_be_loaded_instead_of_a_traceback(tmp_path: Path, monkeypatch) -> None:
    labelled = tmp_path / "he.tsv"
    labelled.write_text("comment\tlabel\nשלום\t0\n")
    monkeypatch.setenv("CLASSIFIER_MODELS", json.dumps({"he": str(tmp_path / "no-such-model")}))
    result = CliRunner().invoke(model_cli, ["eval", str(labelled), "--language", "he", "--labels", "hebrew"])
    assert result.exit_code == 2 and "cannot load the models" in _plain(result.output), result.output


def _plain(output: str) -> str:
    """Rich's error box as one line of words."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())
