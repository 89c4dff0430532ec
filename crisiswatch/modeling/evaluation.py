"""Classification metrics for labelled sentiment data (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment


@dataclass(frozen=True)
class ClassificationReport:
    """Macro recall (the TweetEval headline figure), accuracy, per-class F1 and confusion."""

    macro_recall: float
    accuracy: float
    f1: dict[Sentiment, float]
    recall: dict[Sentiment, float]
    confusion: np.ndarray
    count: int

    @property
    def polar_macro_recall(self) -> float:
        """Mean recall of negative and positive: how well the two classes a crisis turns on are found."""
        return (self.recall[Sentiment.NEGATIVE] + self.recall[Sentiment.POSITIVE]) / 2

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view, figures in percent."""
        return {
            "count": self.count,
            "macro_recall": round(100 * self.macro_recall, 2),
            "polar_macro_recall": round(100 * self.polar_macro_recall, 2),
            "accuracy": round(100 * self.accuracy, 2),
            "f1": {s.value: round(100 * v, 2) for s, v in self.f1.items()},
            "recall": {s.value: round(100 * v, 2) for s, v in self.recall.items()},
            "confusion": {
                "rows_true_cols_predicted": [s.value for s in SENTIMENT_ORDER],
                "matrix": self.confusion.tolist(),
            },
        }


def classification_report(truth: Sequence[Sentiment], predicted: Sequence[Sentiment]) -> ClassificationReport:
    """Score ``predicted`` against ``truth``; both are sequences of the same length."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        raise ValueError("no labelled examples to score")
    index = {s: i for i, s in enumerate(SENTIMENT_ORDER)}
    confusion = np.zeros((3, 3), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    diag = np.diag(confusion).astype(float)
    recall = np.divide(diag, support, out=np.zeros(3), where=support > 0)
    precision = np.divide(diag, predicted_count, out=np.zeros(3), where=predicted_count > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(3), where=(precision + recall) > 0)
    present = support > 0
    return ClassificationReport(
        macro_recall=float(recall[present].mean()),
        accuracy=float(diag.sum() / confusion.sum()),
        f1={s: float(f1[i]) for i, s in enumerate(SENTIMENT_ORDER)},
        recall={s: float(recall[i]) for i, s in enumerate(SENTIMENT_ORDER)},
        confusion=confusion,
        count=int(confusion.sum()),
    )
