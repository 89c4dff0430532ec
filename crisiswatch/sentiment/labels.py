"""Mapping a checkpoint's own label names onto our three sentiment classes, and its outputs onto scores."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from pydantic import TypeAdapter

from crisiswatch.contracts.schemas import Sentiment, SentimentScores

_NAMED = {
    "negative": Sentiment.NEGATIVE,
    "neg": Sentiment.NEGATIVE,
    "neutral": Sentiment.NEUTRAL,
    "neu": Sentiment.NEUTRAL,
    "positive": Sentiment.POSITIVE,
    "pos": Sentiment.POSITIVE,
}
_STARS = re.compile(r"^([1-5])\s*stars?$")
_GENERIC = re.compile(r"^label_(\d+)$")


class LabelMappingError(ValueError):
    """The checkpoint's labels cannot be mapped onto negative/neutral/positive."""


def _normalised(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def map_labels(id2label: Mapping[int, str]) -> list[Sentiment]:
    """Return, for each output index of a checkpoint, the sentiment class it stands for.

    Accepts negative/neutral/positive in any spelling (``NEG``, ``Positive``),
    star ratings (1-2 stars negative, 3 neutral, 4-5 positive) and generic
    ``LABEL_0..2`` names, which follow the TweetEval order negative, neutral,
    positive. Anything else raises :class:`LabelMappingError` naming the labels.
    """
    ordered = [id2label[i] for i in sorted(id2label)]
    names = [_normalised(name) for name in ordered]
    if all(name in _NAMED for name in names):
        mapped = [_NAMED[name] for name in names]
        if set(mapped) == {Sentiment.NEGATIVE, Sentiment.POSITIVE} or set(mapped) == set(Sentiment):
            return mapped
    stars = [_STARS.match(name) for name in names]
    if all(stars):
        values = [int(match.group(1)) for match in stars if match]
        return [Sentiment.NEGATIVE if v <= 2 else Sentiment.NEUTRAL if v == 3 else Sentiment.POSITIVE for v in values]
    generic = [_GENERIC.match(name) for name in names]
    if all(generic) and len(names) == 3:
        return [Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE]
    raise LabelMappingError(
        f"cannot map the model's labels {ordered} to negative/neutral/positive; expected names such as "
        "'negative'/'neutral'/'positive', '1 star'..'5 stars', or exactly three LABEL_0..LABEL_2"
    )


_SCORES_LIST = TypeAdapter(list[SentimentScores])


def as_scores(probabilities: np.ndarray) -> list[SentimentScores]:
    """One ``SentimentScores`` per row of a (n, 3) negative/neutral/positive array.

    Validated as one list by pydantic's core, which costs about half as much
    per row as calling the constructor row by row.
    """
    rows = probabilities.tolist()
    return _SCORES_LIST.validate_python([{"negative": n, "neutral": u, "positive": p} for n, u, p in rows])
