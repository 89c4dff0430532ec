"""The cross-validation folds the Hebrew sentiment models are chosen on, made in one place.

``hebrew-ngram-1`` (``train-ngram``), the e5 heads and their blend
(``train-e5``) and the fine-tuned e5 (``finetune-e5``) are compared on the
same split of Hebrew ``train.tsv``: ``StratifiedKFold(n_splits=5,
shuffle=True, random_state=2026)`` by label (docs/languages.md). Each trainer
asks :class:`Folds` for it, so their figures stay comparable fold by fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .labelled import LabelledText


@dataclass(frozen=True)
class Folds:
    """Stratified ``count``-fold cross-validation by label, shuffled with ``seed`` (the defaults: the Hebrew folds)."""

    count: int = 5
    seed: int = 2026

    def split(self, rows: Sequence[LabelledText]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each fold's (fitted-on, held-out) row indices, in fold order; every row is held out once."""
        from sklearn.model_selection import StratifiedKFold

        targets = np.array([row.label.value for row in rows])
        splitter = StratifiedKFold(n_splits=self.count, shuffle=True, random_state=self.seed)
        return list(splitter.split(np.zeros(len(targets)), targets))


HEBREW_FOLDS = Folds()
"""The folds every Hebrew model is chosen on: 5 of Hebrew ``train.tsv``, seed 2026."""
