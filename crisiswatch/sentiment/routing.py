"""Which sentiment model scores a mention, by the mention's language.

A mention's ``lang`` (identified by the listener) picks its model from a
mapping such as ``{"en": "default", "und": "default", "he": "hebrew"}``.
``*`` names a fallback for every other language; without one, a mention in
an unmapped language is *unscored*: it is counted, and never reaches the
detector, which would otherwise read a model's guess on a language it never
saw as a real negative or neutral. Batches hold one model's texts only.

Pure logic, no model code: :mod:`crisiswatch.sentiment.loading` loads the
models a mapping names.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crisiswatch.contracts.schemas import SentimentScores

ANY_LANGUAGE = "*"
"""The mapping key of the fallback model, for every language not named."""
OTHER_LANGUAGE = "other"
"""The metric label for a language the mapping does not name (keeps the label set bounded)."""
_LANGUAGE_KEY = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z0-9]{2,8})?|\*)$")


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
    """Check a language → model-reference mapping: keys are language codes (``he``, ``pt-br``) or ``*``.

    Keys are lower-cased (``HE`` is ``he``); a reference must not be blank.
    Raises ``ValueError`` naming the offending entry.
    """
    routes: dict[str, str] = {}
    for key, reference in value.items():
        language = str(key).strip().lower()
        if not _LANGUAGE_KEY.match(language):
            raise ValueError(f"language {key!r} is not a language code such as 'en', 'he', 'pt-br', or '*'")
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
    """The loaded models, each under every language it is mapped to."""

    by_language: dict[str, Scorer]
    fallback: Scorer | None = None
    _names: dict[str, Scorer] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scorers = [*self.by_language.values(), *([self.fallback] if self.fallback else [])]
        self._names = {}
        for scorer in scorers:
            known = self._names.setdefault(scorer.name, scorer)
            if known is not scorer:
                raise ValueError(
                    f"two different models are both called {scorer.name!r}; results could not tell them apart"
                )

    def scorer_for(self, language: str) -> Scorer | None:
        """The model for ``language`` (its base language when only that is mapped), the fallback, or ``None``."""
        language = language.lower()
        scorer = self.by_language.get(language) or self.by_language.get(language.split("-", 1)[0])
        return scorer or self.fallback

    def language_label(self, language: str) -> str:
        """``language`` as a metric label: mapped languages by name, every other one as ``other``."""
        language = language.lower()
        if language in self.by_language:
            return language
        base = language.split("-", 1)[0]
        return base if base in self.by_language else OTHER_LANGUAGE

    def scorer_named(self, name: str) -> Scorer:
        """The loaded model called ``name`` (as :func:`group_by_scorer` groups them)."""
        return self._names[name]

    @property
    def scorers(self) -> list[Scorer]:
        """Each distinct loaded model once."""
        return list(self._names.values())


def group_by_scorer(languages: Sequence[str], models: LanguageModels) -> tuple[dict[str, list[int]], list[int]]:
    """Positions of a pass's mentions per model name, and the positions no model scores.

    Each group becomes its own model batches, so a batch never mixes
    languages that go to different models.
    """
    groups: dict[str, list[int]] = {}
    unscored: list[int] = []
    for position, language in enumerate(languages):
        scorer = models.scorer_for(language)
        if scorer is None:
            unscored.append(position)
        else:
            groups.setdefault(scorer.name, []).append(position)
    return groups, unscored
