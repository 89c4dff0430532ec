"""Which sentiment model scores a mention, by the mention's language.

A mention's ``lang`` (identified by the listener) picks its model from a
mapping such as ``{"en": "default", "und": "default", "he": "hebrew"}``.
``*`` names a fallback for every other language (by default the multilingual
model); without one, a mention in an unmapped language is *unscored*: it is
counted, and never reaches the detector, which would otherwise read a model's
guess on a language it never saw as a real negative or neutral. Text without a
letter (empty, emoji only) is unscored whatever its language. Batches hold one
model's texts only.

Pure logic, no model code: :mod:`crisiswatch.sentiment.loading` loads the
models a mapping names.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from crisiswatch.contracts.schemas import SentimentScores, primary_language

ANY_LANGUAGE = "*"
"""The mapping key of the fallback model, for every language not named."""
OTHER_LANGUAGE = "other"
"""The metric label for a language the mapping does not name (keeps the label set bounded)."""
_LANGUAGE_KEY = re.compile(r"^(?:[a-z]{2,3}|\*)$")


class Scorer(Protocol):
    """A loaded sentiment model: texts in, negative/neutral/positive probabilities out."""

    name: str

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        """Scores for each text, in input order."""
        ...

    def describe(self) -> dict[str, str]:
        """What runs it (device, precision, engine, threads), for the model info metric and logs."""
        ...


def parse_routes(value: Mapping[str, str]) -> dict[str, str]:
    """Check a language → model-reference mapping: keys are primary language codes (``en``, ``he``) or ``*``.

    Mentions are routed by their primary language (``he-IL`` and ``iw`` read
    as ``he``), so a regional key could never match and is refused, as is a
    blank reference. Raises ``ValueError`` naming the offending entry.
    """
    routes: dict[str, str] = {}
    for key, reference in value.items():
        language = str(key).strip().lower()
        if not _LANGUAGE_KEY.match(language):
            raise ValueError(
                f"language {key!r} is not a primary language code such as 'en' or 'he', or '*' "
                "(regional tags are read as their language)"
            )
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"language {language!r} names no model")
        if language in routes:
            raise ValueError(f"language {language!r} is mapped twice")
        routes[language] = reference.strip()
    if not routes:
        raise ValueError("the language → model mapping is empty; map at least one language")
    return routes


def read_routes_file(path: Path) -> dict[str, str]:
    """A TOML file's ``[models]`` table (or its top level) as a checked mapping.

    ``en = "default"`` lines, with ``"*" = "..."`` for the fallback.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the model mapping {path}: {error}") from error
    table = document.get("models", document)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f'{path}: expected a [models] table of language = "model" lines')
    return parse_routes(table)


@dataclass
class LanguageModels:
    """The loaded models, each under every primary language it is mapped to, and the fallback for the rest."""

    by_language: dict[str, Scorer]
    fallback: Scorer | None = None

    def __post_init__(self) -> None:
        named: dict[str, Scorer] = {}
        for scorer in [*self.by_language.values(), *([self.fallback] if self.fallback else [])]:
            if named.setdefault(scorer.name, scorer) is not scorer:
                raise ValueError(
                    f"two different models are both called {scorer.name!r}; results could not tell them apart"
                )

    def _mapped(self, language: str) -> str | None:
        """The mapping key that serves ``language`` (its primary language), if the mapping names it."""
        primary = primary_language(language)
        return primary if primary in self.by_language else None

    def scorer_for(self, language: str) -> Scorer | None:
        """The model for ``language``: its primary language's, else the fallback, else ``None`` (unscored)."""
        key = self._mapped(language)
        return self.by_language[key] if key else self.fallback

    def language_label(self, language: str) -> str:
        """``language`` as a metric label: a mapped primary language by name, every other one as ``other``."""
        return self._mapped(language) or OTHER_LANGUAGE


BatchFailure = Callable[[Scorer, Exception], None]
"""Told when a model fails on a whole batch (before its texts are retried one by one)."""
GroupScored = Callable[[Scorer, int, float], None]
"""Told, after each model's group, how many texts it scored and in how many seconds."""


def score_each(
    scorer: Scorer, texts: Sequence[str], max_batch_size: int, on_batch_failure: BatchFailure | None = None
) -> list[SentimentScores | None]:
    """Score ``texts`` in one call; if that fails, text by text, so one bad text cannot sink the rest (``None``)."""
    if not texts:
        return []
    try:
        return list(scorer.predict(texts, max_batch_size))
    except Exception as error:  # noqa: BLE001 - any model failure: retried text by text below
        if on_batch_failure:
            on_batch_failure(scorer, error)
    results: list[SentimentScores | None] = []
    for text in texts:
        try:
            results.append(scorer.predict([text])[0])
        except Exception:  # noqa: BLE001 - that text alone fails; the caller dead-letters it
            results.append(None)
    return results


@dataclass(frozen=True)
class RoutedScores:
    """Per text, in input order: the model that scored it (``None``: no model reads its language) and its scores.

    A text with a model but no scores is one the model failed on.
    """

    models: list[str | None]
    scores: list[SentimentScores | None]


def is_readable(text: str) -> bool:
    """Whether ``text`` holds a letter of any script: empty, emoji-only or digits-only text has nothing to read."""
    return any(character.isalpha() for character in text)


def score_routed(
    texts: Sequence[str],
    languages: Sequence[str],
    models: LanguageModels,
    max_batch_size: int,
    on_group: GroupScored | None = None,
    on_batch_failure: BatchFailure | None = None,
) -> RoutedScores:
    """Score each text with its language's model, one call per model, so a batch never mixes models.

    A text without a letter (empty, emoji only) is left unscored whatever its
    language: no model reads it, and a guess would count as evidence.
    Used alike by the classifier service and ``crisiswatch classify``.
    """
    groups: dict[str, tuple[Scorer, list[int]]] = {}
    for position, language in enumerate(languages):
        scorer = models.scorer_for(language) if is_readable(texts[position]) else None
        if scorer is not None:
            groups.setdefault(scorer.name, (scorer, []))[1].append(position)
    names: list[str | None] = [None] * len(texts)
    scores: list[SentimentScores | None] = [None] * len(texts)
    for scorer, positions in groups.values():
        started = time.perf_counter()
        group_scores = score_each(scorer, [texts[i] for i in positions], max_batch_size, on_batch_failure)
        if on_group:
            on_group(scorer, len(positions), time.perf_counter() - started)
        for position, score in zip(positions, group_scores, strict=True):
            names[position] = scorer.name
            scores[position] = score
    return RoutedScores(names, scores)
