"""How well mentions are told apart by language: ``crisiswatch eval-language`` on the labelled sentiment sets.

Every text of a set is in one known language, so the figure is the share
identified as that language, with the share left undetermined beside it (a
text the identifier refuses to call is routed to the fallback, not to a wrong
model) and the rate on this machine.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crisiswatch.ingest.language import UNDETERMINED, detect_language

SHARED_SETS = {
    "en": ("english/semeval_2013_2016_train.tsv", "text"),
    "he": ("hebrew/train.tsv", "comment"),
}
"""The shared sentiment sets by language: file under the data folder, and its text column."""


@dataclass(frozen=True)
class LanguageScore:
    """Identification of one language's texts: how many, the share right, the share undetermined, texts/s."""

    texts: int
    correct: float
    undetermined: float
    per_second: float


def texts_of(path: Path, column: str, limit: int) -> Iterator[str]:
    """The first ``limit`` non-empty texts of a TSV file's ``column``."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        count = 0
        for row in reader:
            text = (row.get(column) or "").strip()
            if text:
                yield text
                count += 1
                if count >= limit:
                    return


def shared_samples(data: Path, limit: int) -> dict[str, list[str]]:
    """Texts per language from the shared sets found under ``data`` (those missing are left out)."""
    return {
        language: list(texts_of(data / name, column, limit))
        for language, (name, column) in SHARED_SETS.items()
        if (data / name).exists()
    }


def score_identification(samples: Mapping[str, Sequence[str]]) -> dict[str, LanguageScore]:
    """Identify every text and score each language's set."""
    scores: dict[str, LanguageScore] = {}
    for language, texts in samples.items():
        started = time.perf_counter()
        found = [detect_language(text) for text in texts]
        elapsed = max(time.perf_counter() - started, 1e-9)
        total = max(len(texts), 1)
        scores[language] = LanguageScore(
            texts=len(texts),
            correct=sum(guess == language for guess in found) / total,
            undetermined=sum(guess == UNDETERMINED for guess in found) / total,
            per_second=len(texts) / elapsed,
        )
    return scores
