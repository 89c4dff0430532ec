"""The one fold helper gives every Hebrew trainer the folds it used before: the split the shipped models were chosen on.

The expected folds were written down from the trainers' own code before it
moved into :class:`Folds` (``StratifiedKFold(shuffle=True, random_state=2026)``
by label, as ``train-ngram``, ``train-e5`` and ``finetune-e5`` each set it up).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from crisiswatch.contracts.schemas import SENTIMENT_ORDER
from crisiswatch.modeling.folds import HEBREW_FOLDS, Folds
from crisiswatch.modeling.labelled import LabelledText, read_labelled

from ..conftest import SHARED_DATA

HEBREW_TRAIN = SHARED_DATA / "sentiment" / "hebrew" / "train.tsv"
ROWS = [LabelledText(f"text {i}", SENTIMENT_ORDER[(i * 7) % 5 % 3]) for i in range(30)]
"""Thirty rows, 12 negative, 12 neutral, 6 positive, in an uneven order."""


def _held_out_digest(folds: list[tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for _, held_out in folds:
        digest.update(",".join(map(str, held_out.tolist())).encode() + b";")
    return digest.hexdigest()


def test_the_hebrew_folds_are_the_documented_split() -> None:
    assert (HEBREW_FOLDS.count, HEBREW_FOLDS.seed) == (5, 2026)


def test_the_folds_are_those_the_trainers_made_before() -> None:
    held_out = [fold.tolist() for _, fold in HEBREW_FOLDS.split(ROWS)]
    assert held_out == [
        [5, 9, 16, 22, 28, 29],
        [3, 8, 11, 14, 15, 20],
        [2, 6, 10, 21, 23, 25],
        [1, 13, 17, 19, 24, 27],
        [0, 4, 7, 12, 18, 26],
    ]


def test_every_row_is_held_out_once_and_each_fold_keeps_the_label_mix() -> None:
    folds = Folds(count=3, seed=7).split(ROWS)
    assert sorted(i for _, held_out in folds for i in held_out.tolist()) == list(range(len(ROWS)))
    for fit_part, held_out in folds:
        assert set(fit_part.tolist()).isdisjoint(held_out.tolist())
        counts = Counter(ROWS[i].label for i in held_out)
        assert [counts[label] for label in SENTIMENT_ORDER] == [4, 4, 2]


@pytest.mark.skipif(not HEBREW_TRAIN.is_file(), reason="../shared/data is not present")
def test_the_hebrew_train_folds_are_those_the_shipped_models_were_chosen_on() -> None:
    train = read_labelled(HEBREW_TRAIN, "hebrew")
    expected = "ccdd0731ca111dff3431e758906fb6d781eeed2bdeac7d9c8e3c6fab4de1132f"
    assert (len(train), _held_out_digest(HEBREW_FOLDS.split(train))) == (5926, expected)
